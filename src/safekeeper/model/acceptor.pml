/* SPDX-License-Identifier: Apache-2.0 */
/* acceptor.pml -- a safekeeper's own steps: durability, recovery, WAL streaming, crashes. */

/*
 * Acceptor a recovers one record from peer j: a has adopted the history
 * of its current term T but holds fewer than E records. j may serve LSN
 * flush(a) only if j's log agrees with a's history there (divergence
 * point of j from it lies beyond); j may be in any term.
 */
inline recover_one(a, j) {
	d_step {
		acc[a].hstart[acc[a].term] != NONE && acc[a].flush < acc[a].hstart[acc[a].term] ->
		for (t_ : 1 .. MAXTERM) {
			hh_[t_] = acc[a].hstart[t_]
		}
		divergence(j, D_);
		if
		:: D_ > acc[a].flush ->
			printf("MODEL recover acceptor=%d from=%d lsn=%d record=%d\n", a, j,
			       acc[a].flush, acc[j].log[acc[a].flush]);
#ifdef WITNESS_RECOVER
			/* a lagging acceptor copies a record from a peer */
			witness_recover = 0;
			assert(witness_recover);
#endif
			acc[a].log[acc[a].flush] = acc[j].log[acc[a].flush];
			acc[a].flush++;
			e_ = acc[a].owner - 1;
			if
			:: acc[a].owner != 0 && acc[a].flush == acc[a].hstart[acc[a].term] &&
			   el[e_].term == acc[a].term && el[e_].phase == SYNCING ->
				el[e_].synced = el[e_].synced | (1 << a)
			:: else -> skip
			fi;
			check_log_matching(a);
			learn_all()
		:: else -> skip
		fi
	}
}

/*
 * The walreceiver's connect checks for acceptor a: the compute that owns
 * a's current term runs in that term (SHOW kelp.term), a has adopted the
 * term's history and holds at least E records (it never asks below E).
 */
#define MAY_CONNECT(a) \
	(acc[a].owner != 0 && el[acc[a].owner - 1].phase == ELECTED && \
	 el[acc[a].owner - 1].term == acc[a].term && acc[a].hstart[acc[a].term] != NONE && \
	 acc[a].flush >= acc[a].hstart[acc[a].term])

/*
 * Acceptor a takes one record from compute e_ of term T_: append, fsync,
 * then report the new flush LSN (the ack). The ack reaches the compute at
 * once and stays counted for the rest of its term, which covers acks
 * still in flight when a later vote closes the connection.
 */
inline take_record(a) {
	printf("MODEL stream acceptor=%d elector=%d term=%d lsn=%d\n", a, e_, T_, acc[a].flush);
	acc[a].log[acc[a].flush] = elog[SLOT(T_, e_)].r[acc[a].flush];
	acc[a].flush++;
	el[e_].ack[a] = acc[a].flush;
	check_log_matching(a);
	acks_to_clients(e_);
	learn_all()
}

#ifndef MODEL_CONNECTIONS
/* One XLogData message to acceptor a, checked as at connect time. */
inline stream(a) {
	d_step {
		MAY_CONNECT(a) && acc[a].flush < el[acc[a].owner - 1].wal_end ->
		e_ = acc[a].owner - 1;
		T_ = acc[a].term;
		take_record(a)
	}
}
#else
/* Connections as state: connect once with the checks above. */
inline connect(a) {
	d_step {
		acc[a].conn == 0 && MAY_CONNECT(a) ->
		printf("MODEL connect acceptor=%d elector=%d term=%d flush=%d\n", a,
		       acc[a].owner - 1, acc[a].term, acc[a].flush);
		acc[a].conn = acc[a].owner;
		acc[a].connterm = acc[a].term
	}
}

/*
 * One XLogData message on an open connection; it lives as long as the
 * compute's term (BROKEN_NO_FENCE: a vote does not close it).
 */
inline stream(a) {
	d_step {
		acc[a].conn != 0 && el[acc[a].conn - 1].phase == ELECTED &&
		el[acc[a].conn - 1].term == acc[a].connterm &&
		acc[a].flush < el[acc[a].conn - 1].wal_end ->
		e_ = acc[a].conn - 1;
		T_ = acc[a].connterm;
		take_record(a)
	}
}
#endif

#ifdef MODEL_CRASHES
/* The control file reaches disk late (a background write). */
inline persist(a) {
	d_step {
		acc[a].dterm != acc[a].term || acc[a].downer != acc[a].owner ->
		persist_control(a);
		skip /* a d_step must not end in a loop */
	}
}

/*
 * Acceptor a crashes and restarts with what is on disk: its WAL and the
 * last control file written.
 */
inline crash(a) {
	d_step {
		acc[a].term != acc[a].dterm || acc[a].owner != acc[a].downer ->
		printf("MODEL crash acceptor=%d term=%d durable_term=%d\n", a, acc[a].term,
		       acc[a].dterm);
		acc[a].term = acc[a].dterm;
		acc[a].owner = acc[a].downer;
		for (t_ : 1 .. MAXTERM) {
			acc[a].hstart[t_] = acc[a].dhstart[t_]
		}
		skip /* a d_step must not end in a loop */
	}
}
#endif
