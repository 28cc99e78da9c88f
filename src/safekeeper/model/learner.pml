/* SPDX-License-Identifier: Apache-2.0 */
/* learner.pml -- the commit LSN rule and what learners may read. */

/*
 * f = acceptor j's flush LSN if it counts for the commit LSN of the term
 * llt_ that acceptor a is in, else 0. j counts if the last entry of its
 * history is that term with the same start, and j has reached the start.
 * An acceptor that has adopted a newer term but is still below its start
 * counts for no term at all (BROKEN_COMMIT_BEFORE_TERM_START counts it
 * for its last log term instead, which loses data); an acceptor that only
 * voted for a newer term still counts for its old one.
 */
inline counted_flush(a, j, f) {
#if defined(BROKEN_COMMIT_ANY_TERM)
	f = acc[j].flush
#elif defined(BROKEN_COMMIT_BEFORE_TERM_START)
	last_log_term(j, lct_);
	if
	:: lct_ == llt_ && acc[j].hstart[llt_] == acc[a].hstart[llt_] -> f = acc[j].flush
	:: else -> f = 0
	fi
#else
	last_entry(j, lct_);
	if
	:: lct_ == llt_ && acc[j].hstart[llt_] == acc[a].hstart[llt_] &&
	   acc[j].flush >= acc[j].hstart[llt_] -> f = acc[j].flush
	:: else -> f = 0
	fi
#endif
}

/*
 * What learners (pageserver, replicas, lagging peers) may read from
 * acceptor a: everything below a's commit LSN, the quorum-th (2nd) highest
 * flush LSN among acceptors in a's current term (counted_flush), capped at
 * a's own flush. An acceptor that is below the start of its current term
 * serves nothing.
 * Peers' positions are read as they are now, the freshest gossip; older
 * gossip reports facts that were true earlier and was checked then.
 * Inline body: learn_all() runs it for every acceptor after every step
 * that changes a flush LSN or a history, so every read any learner could
 * ever make is checked as soon as it becomes possible.
 */
inline learn_from(a) {
#ifdef BROKEN_COMMIT_BEFORE_TERM_START
	last_log_term(a, llt_);
#else
	last_entry(a, llt_);
#endif
	if
	:: llt_ != 0 && acc[a].flush >= acc[a].hstart[llt_] ->
		counted_flush(a, 0, f0_);
		counted_flush(a, 1, f1_);
		counted_flush(a, 2, f2_);
		/* 2nd highest of three = sum - max - min */
		hi_ = f0_;
		lo_ = f0_;
		if
		:: f1_ > hi_ -> hi_ = f1_
		:: else -> skip
		fi;
		if
		:: f2_ > hi_ -> hi_ = f2_
		:: else -> skip
		fi;
		if
		:: f1_ < lo_ -> lo_ = f1_
		:: else -> skip
		fi;
		if
		:: f2_ < lo_ -> lo_ = f2_
		:: else -> skip
		fi;
		cl_ = f0_ + f1_ + f2_ - hi_ - lo_;
		if
		:: cl_ > acc[a].flush -> n_ = acc[a].flush
		:: else -> n_ = cl_
		fi;
		for (s_ : 0 .. MAXLSN - 1) {
			if
			:: s_ < n_ ->
				p_ = s_;
				r_ = acc[a].log[s_];
				check_learn()
			:: else -> skip
			fi
		}
	:: else -> skip
	fi
}

inline learn_all() {
	learn_from(0);
	learn_from(1);
	learn_from(2)
}
