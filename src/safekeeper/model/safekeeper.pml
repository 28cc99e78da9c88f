/* SPDX-License-Identifier: Apache-2.0 */
/* safekeeper.pml -- model of Kelp's safekeeper election and acceptance protocol. */

/*
 * 3 acceptors, 2 electors whose computes compete, terms 1..MAXTERM, WAL of
 * MAXLSN records. Written in the style of a TLA+ next-state relation: one
 * process picks any enabled action; each action is one atomic d_step.
 * See README.md in this folder and docs/safekeeper-protocol.md.
 *
 * Broken variants (each must make the checker fail on a property):
 *   BROKEN_VOTE_NOT_DURABLE  the vote is answered before it is on disk
 *   BROKEN_CONTROL_NOT_DURABLE  votes and election results are answered
 *                            before the control file is on disk
 *   BROKEN_NO_FENCE          voting does not disconnect the old compute
 *   BROKEN_COMMIT_ANY_TERM   commit LSN counts flushes of any term
 *   BROKEN_COMMIT_BEFORE_TERM_START  commit LSN counts an acceptor by its
 *                            last log term while it is below the start
 *                            of a newer term it adopted
 *   BROKEN_NO_TRUNCATE       adopting a history does not truncate
 */

#include "state.pml"
#include "history.pml"
#include "props.pml"
#include "learner.pml"
#include "elector.pml"
#include "acceptor.pml"

/* All actions of elector e. */
#define ELECTOR_ACTIONS(e) \
	:: start_election(e); \
	:: vote(e, 0); \
	:: vote(e, 1); \
	:: vote(e, 2); \
	:: choose(e); \
	:: sync_acceptor(e, 0); \
	:: sync_acceptor(e, 1); \
	:: sync_acceptor(e, 2); \
	:: start_compute(e);

/* All actions of acceptor a, whose peers are b and c. */
#define ACCEPTOR_ACTIONS(a, b, c) \
	:: recover_one(a, b); \
	:: recover_one(a, c); \
	:: stream(a); \
	CONNECT_ACTION(a) \
	CRASH_ACTIONS(a)

#ifdef MODEL_CONNECTIONS
#define CONNECT_ACTION(a) :: connect(a);
#else
#define CONNECT_ACTION(a)
#endif
#ifdef MODEL_CRASHES
#define CRASH_ACTIONS(a) :: persist(a); :: crash(a);
#else
#define CRASH_ACTIONS(a)
#endif

active proctype world()
{
	d_step {
		for (k_ : 0 .. NACC - 1) {
			for (t_ : 0 .. MAXTERM) {
				acc[k_].hstart[t_] = NONE;
				acc[k_].dhstart[t_] = NONE
			}
		}
		for (k_ : 0 .. NELEC - 1) {
			for (t_ : 0 .. MAXTERM) {
				el[k_].hist[t_] = NONE
			}
		}
	}
end:
	do
	ELECTOR_ACTIONS(0)
	ELECTOR_ACTIONS(1)
	ACCEPTOR_ACTIONS(0, 1, 2)
	ACCEPTOR_ACTIONS(1, 0, 2)
	ACCEPTOR_ACTIONS(2, 0, 1)
	od
}
