/* SPDX-License-Identifier: Apache-2.0 */
/* state.pml -- bounds, types and global state of the safekeeper protocol model. */

/*
 * Bounds. The checker script passes them with -D; these defaults are the
 * quick (CI) bounds.
 *   MAXTERM  highest term any elector may use (terms are 1..MAXTERM)
 *   MAXLSN   WAL capacity in records; an LSN here is a record index
 */
#ifndef MAXTERM
#define MAXTERM 3
#endif
#ifndef MAXLSN
#define MAXLSN 3
#endif

#define NACC 3   /* acceptors (safekeepers) */
#define NELEC 2  /* competing electors, each driving its own compute */
#define QUORUM 2 /* 2 of 3 */
#define NT (MAXTERM + 1)
#define NSLOT (NT * NELEC)
#define NONE 255 /* "absent" in a term history; also "infinity" as an LSN */

/* Elector phases. The compute of a term exists only in phase ELECTED. */
#define IDLE 0
#define VOTING 1  /* phase 1a: collecting votes */
#define SYNCING 2 /* phase 1b: log chosen, acceptors truncate/recover */
#define ELECTED 3 /* quorum holds the log to E: the compute runs */

/*
 * A slot names one (term, elector) pair. The abstract record a compute
 * writes is its slot number, so a record id says which term and which
 * compute wrote it; 0 means "no record".
 */
#define SLOT(t, e) ((t) * NELEC + (e))
#define SLOT_TERM(s) ((s) / NELEC)
#define POPCOUNT3(m) (((m) & 1) + (((m) >> 1) & 1) + (((m) >> 2) & 1))

/*
 * Which variants need which machinery. Connections are state only when
 * voting may leave one open (BROKEN_NO_FENCE); otherwise the walreceiver
 * streams whenever the connect checks pass, and a dropped connection is
 * just an acceptor that is not scheduled. Crashes are modelled where some
 * state is volatile; in the correct protocol every change is durable
 * before anyone sees it, so a crash is a pause plus a dropped connection.
 */
#ifdef BROKEN_NO_FENCE
#define MODEL_CONNECTIONS
#endif
#if defined(BROKEN_VOTE_NOT_DURABLE) || defined(BROKEN_CONTROL_NOT_DURABLE)
#define MODEL_CRASHES
#endif

/*
 * One safekeeper. The control file (term, history, owner) is written
 * before any reply, and WAL is fsynced before any ack, except in the
 * BROKEN_*_NOT_DURABLE variants, where the d* fields hold what is on disk
 * and a crash restores them.
 */
typedef Acceptor {
	byte term;        /* highest term voted for */
	byte hstart[NT];  /* term history: start LSN of term t, NONE if absent */
	byte owner;       /* elector+1 named owner of `term` (0: not yet) */
	byte log[MAXLSN]; /* WAL: record id per LSN (always durable) */
	byte flush;       /* end of WAL */
	byte conn;        /* MODEL_CONNECTIONS: elector+1 streamed from */
	byte connterm;    /* MODEL_CONNECTIONS: term checked at connect */
	byte dterm;       /* MODEL_CRASHES: durable term, */
	byte dhstart[NT]; /*   history */
	byte downer;      /*   and owner */
};

/*
 * One elector (`kelp sync-safekeepers`) and, once elected, its compute.
 * During VOTING, hist/bllt/bflush/blog hold the most advanced vote
 * response so far; from SYNCING on, hist is the elected history H.
 */
typedef Elector {
	byte term;
	byte phase;
	byte voted;        /* bitmask of acceptors that granted the vote */
	byte bllt;         /* best response: last log term */
	byte bflush;       /* best response: flush LSN */
	byte hist[NT];     /* best response's history, then H */
	byte blog[MAXLSN]; /* best response's WAL: the log below E */
	byte estart;       /* E: where this term's WAL starts */
	byte wal_end;      /* compute's end of WAL (its log is elog[slot]) */
	byte synced;       /* acceptors known to hold H up to E */
	byte ack[NACC];    /* highest flush each walreceiver acknowledged */
	byte ack_next;     /* next LSN to acknowledge to clients */
};

/*
 * Write acceptor a's control file (term, history, owner). In the correct
 * protocol this happens inside every step that changes them, before the
 * reply; in the *_NOT_DURABLE variants the callers skip it.
 */
inline persist_control(a) {
#ifdef MODEL_CRASHES
	acc[a].dterm = acc[a].term;
	acc[a].downer = acc[a].owner;
	for (t_ : 1 .. MAXTERM) {
		acc[a].dhstart[t_] = acc[a].hstart[t_]
	}
#else
	skip
#endif
}

typedef Row {
	byte r[MAXLSN];
};

Acceptor acc[NACC];
Elector el[NELEC];

/*
 * Ghost state: used only by the property checks, never by the protocol.
 *   elog[s]     the log of slot s's compute: the chosen prefix [0, E) plus
 *               the records it wrote; fixed once written
 *   elected     bitmask of slots whose elector chose a log
 *   acked[p]    record acknowledged to a client at LSN p (0: none), and
 *   ackterm[p]  the lowest term in which that happened
 *   learned[p]  record a learner received at LSN p, and
 *   lrnterm[p]  the lowest term whose commit rule allowed it
 *   commitby[t] elector+1 that acknowledged a commit in term t
 */
Row elog[NSLOT];
int elected;
byte acked[MAXLSN];
byte ackterm[MAXLSN];
byte learned[MAXLSN];
byte lrnterm[MAXLSN];
byte commitby[NT];

/* Scratch for d_step bodies; hidden, so never part of a state. */
hidden byte t_, p_, k_, s_, r_, e_, lct_, ea_, eh_, llt_, cl_, n_, T_, E_, D_;
hidden byte f0_, f1_, f2_, hi_, lo_;
hidden byte hh_[NT]; /* a history handed to divergence() */
hidden byte prop_a_commit_survives;
hidden byte prop_b_one_compute_commits_per_term;
hidden byte prop_c_learner_reads_committed;
hidden byte inv_log_matches_term;
hidden byte inv_one_election_per_term;
hidden byte witness_ack_after_takeover, witness_learn_old_record;
hidden byte witness_truncate, witness_recover;
