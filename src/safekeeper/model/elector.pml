/* SPDX-License-Identifier: Apache-2.0 */
/* elector.pml -- phase 1 (election) and the elected compute's own steps. */

/*
 * Every action is one d_step: its first expression is the guard, the rest
 * runs atomically. A message is modelled by the action that delivers it;
 * an action that never runs is a lost message, and actions on different
 * acceptors run in any order (reordering). A delayed reply is the same
 * as a reply the elector looks at later, since what it reports stays true.
 */

/*
 * Elector e (re)starts with the next term. Any earlier compute of e dies
 * with it: its connections drop and its acks are forgotten. Since this may
 * happen again before any vote, an elector can pick any higher term,
 * including the one the other elector is using.
 */
inline start_election(e) {
	d_step {
		el[e].term < MAXTERM ->
		el[e].term++;
		printf("MODEL start_election elector=%d term=%d\n", e, el[e].term);
		el[e].phase = VOTING;
		el[e].voted = 0;
		el[e].bllt = 0;
		el[e].bflush = 0;
		for (t_ : 1 .. MAXTERM) {
			el[e].hist[t_] = NONE
		}
		for (p_ : 0 .. MAXLSN - 1) {
			el[e].blog[p_] = 0
		}
		el[e].estart = 0;
		el[e].wal_end = 0;
		el[e].synced = 0;
		el[e].ack_next = 0;
		for (k_ : 0 .. NACC - 1) {
			el[e].ack[k_] = 0;
#ifdef MODEL_CONNECTIONS
			if
			:: acc[k_].conn == e + 1 -> acc[k_].conn = 0; acc[k_].connterm = 0
			:: else -> skip
			fi
#endif
		}
	}
}

/*
 * Vote request from e to acceptor a, and its reply. The acceptor grants
 * only a term above its own; it drops its walreceiver connection to the
 * old compute and persists the term before replying (rules V1-V3 in
 * docs/safekeeper-protocol.md). A refusal changes nothing and is not
 * modelled. While VOTING the elector keeps the most advanced reply by
 * (last log term, flush LSN). A vote granted after the choice (a late
 * reply) only lets a be told the result.
 */
inline vote(e, a) {
	d_step {
		el[e].phase != IDLE && acc[a].term < el[e].term ->
		printf("MODEL vote elector=%d acceptor=%d term=%d flush=%d\n", e, a, el[e].term,
		       acc[a].flush);
		acc[a].term = el[e].term;
		acc[a].owner = 0;
#ifndef MODEL_CONNECTIONS
		skip;
#elif !defined(BROKEN_NO_FENCE)
		acc[a].conn = 0;
		acc[a].connterm = 0;
#endif
#if !defined(BROKEN_VOTE_NOT_DURABLE) && !defined(BROKEN_CONTROL_NOT_DURABLE)
		persist_control(a);
#endif
		if
		:: el[e].phase == VOTING ->
			el[e].voted = el[e].voted | (1 << a);
			last_log_term(a, r_);
			if
			:: r_ > el[e].bllt || (r_ == el[e].bllt && acc[a].flush >= el[e].bflush) ->
				el[e].bllt = r_;
				el[e].bflush = acc[a].flush;
				for (t_ : 1 .. MAXTERM) {
					el[e].hist[t_] = acc[a].hstart[t_]
				}
				for (p_ : 0 .. MAXLSN - 1) {
					el[e].blog[p_] = acc[a].log[p_]
				}
			:: else -> skip
			fi
		:: else -> skip
		fi
	}
}

/*
 * With a quorum of votes, e chooses the most advanced log: E = its flush
 * LSN, H = its history cut at E plus (term, E). The chosen log becomes the
 * start of e's compute log (the basebackup at E).
 */
inline choose(e) {
	d_step {
		el[e].phase == VOTING && POPCOUNT3(el[e].voted) >= QUORUM ->
		T_ = el[e].term;
		E_ = el[e].bflush;
		for (t_ : 1 .. MAXTERM) {
			if
			:: el[e].hist[t_] != NONE && el[e].hist[t_] > E_ -> el[e].hist[t_] = NONE
			:: else -> skip
			fi
		}
		el[e].hist[T_] = E_;
		printf("MODEL choose elector=%d term=%d E=%d donor_llt=%d\n", e, T_, E_, el[e].bllt);
		check_choice(e);
		s_ = SLOT(T_, e);
		for (p_ : 0 .. MAXLSN - 1) {
			elog[s_].r[p_] = el[e].blog[p_];
			el[e].blog[p_] = 0
		}
		elected = elected | (1 << s_);
		el[e].estart = E_;
		el[e].wal_end = E_;
		el[e].ack_next = E_;
		el[e].bllt = 0;
		el[e].bflush = 0;
		el[e].voted = 0;
		el[e].phase = SYNCING
	}
}

/*
 * "Term T belongs to compute e, starting at E, history H" delivered to an
 * acceptor that voted for T and has not adopted a history for T yet: it
 * truncates at its divergence point from H, adopts H and the owner, and
 * persists all of it. If it already holds E records it is synced; if not,
 * it recovers the rest from a peer (recover_one in acceptor.pml).
 */
inline sync_acceptor(e, a) {
	d_step {
		el[e].phase >= SYNCING && acc[a].term == el[e].term &&
		acc[a].hstart[el[e].term] == NONE ->
		for (t_ : 1 .. MAXTERM) {
			hh_[t_] = el[e].hist[t_]
		}
		divergence(a, D_);
		printf("MODEL sync elector=%d acceptor=%d term=%d flush=%d divergence=%d\n", e, a,
		       el[e].term, acc[a].flush, D_);
#ifdef WITNESS_TRUNCATE
		/* an acceptor drops records at its divergence point */
		witness_truncate = !(D_ < acc[a].flush);
		assert(witness_truncate);
#endif
#ifndef BROKEN_NO_TRUNCATE
		truncate_log(a, D_);
#endif
		for (t_ : 1 .. MAXTERM) {
			acc[a].hstart[t_] = el[e].hist[t_]
		}
		acc[a].owner = e + 1;
#ifndef BROKEN_CONTROL_NOT_DURABLE
		persist_control(a);
#endif
		if
		:: acc[a].flush >= el[e].estart && el[e].phase == SYNCING ->
			el[e].synced = el[e].synced | (1 << a)
		:: else -> skip
		fi;
		check_log_matching(a);
		learn_all()
	}
}

/*
 * sync-safekeepers returns E once a quorum holds H up to E; the compute
 * then starts from a basebackup at E and writes its records. They are all
 * written here at once (up to the WAL bound): the compute's own WAL is
 * invisible until a walreceiver streams it, and streaming is optional in
 * every step, so writing later would only remove behaviours.
 */
inline start_compute(e) {
	d_step {
		el[e].phase == SYNCING && POPCOUNT3(el[e].synced) >= QUORUM ->
		printf("MODEL start_compute elector=%d term=%d E=%d\n", e, el[e].term, el[e].estart);
		el[e].synced = 0;
		el[e].phase = ELECTED;
		s_ = SLOT(el[e].term, e);
		do
		:: el[e].wal_end < MAXLSN ->
			printf("MODEL append elector=%d term=%d lsn=%d record=%d\n", e, el[e].term,
			       el[e].wal_end, s_);
			elog[s_].r[el[e].wal_end] = s_;
			el[e].wal_end++
		:: else -> break
		od
	}
}

/*
 * Synchronous replication, ANY 2: the compute acknowledges the commit of
 * each of its own records once 2 walreceivers reported a flush beyond it.
 * It never acknowledges records below E: they are not its own. This runs
 * right after every ack, so each commit is acknowledged as early as it can
 * be; acknowledging later only checks the same facts later. Inline body,
 * called inside stream()'s d_step.
 */
inline acks_to_clients(e) {
	T_ = el[e].term;
	do
	:: el[e].ack_next < el[e].wal_end &&
	   (el[e].ack[0] > el[e].ack_next) + (el[e].ack[1] > el[e].ack_next) +
	   (el[e].ack[2] > el[e].ack_next) >= QUORUM ->
		p_ = el[e].ack_next;
		r_ = elog[SLOT(T_, e)].r[p_];
		printf("MODEL ack_to_client elector=%d term=%d lsn=%d record=%d\n", e, T_, p_, r_);
		check_ack(e);
		el[e].ack_next++
	:: else -> break
	od;
	/* an ack at or below ack_next can no longer count: forget it */
	for (k_ : 0 .. NACC - 1) {
		if
		:: el[e].ack[k_] <= el[e].ack_next -> el[e].ack[k_] = 0
		:: else -> skip
		fi
	}
}
