/* SPDX-License-Identifier: Apache-2.0 */
/* history.pml -- term-history rules: last log term and the divergence point. */

/*
 * A term history is stored as hstart[t] = start LSN of term t, or NONE.
 * Terms in a history are increasing and their starts never decrease, so
 * "the next entry after t" is the smallest start of any later term.
 * The protocol decides everything from histories and flush positions; the
 * record contents are only read by the property checks, which is how the
 * model checks that histories really identify logs.
 */

/*
 * res = last log term of acceptor a: the term of the last history entry
 * whose start is at or below its flush LSN (0 for an empty history).
 * Entries above flush (adopted while lagging) do not count.
 */
inline last_log_term(a, res) {
	res = 0;
	for (t_ : 1 .. MAXTERM) {
		if
		:: acc[a].hstart[t_] != NONE && acc[a].hstart[t_] <= acc[a].flush -> res = t_
		:: else -> skip
		fi
	}
}

/*
 * res = current term of acceptor a's log: the term of the last entry of
 * its history (0 for an empty history), whether or not a has reached that
 * entry's start yet.
 */
inline last_entry(a, res) {
	res = 0;
	for (t_ : 1 .. MAXTERM) {
		if
		:: acc[a].hstart[t_] != NONE -> res = t_
		:: else -> skip
		fi
	}
}

/*
 * res = divergence point of acceptor a's log from the log described by
 * the history in hh_ (copy it there first; its last entry is open-ended:
 * the elected term, or the lagging acceptor's own current term):
 *   lct = last term present in both with the same start (0: none);
 *   res = 0 if there is none, else the smaller of
 *         the end of lct in a's log (next entry's start, capped at flush)
 *         and the end of lct in hh_ (next entry's start, or infinity).
 * a's records below res equal those hh_ describes; a truncates to res.
 */
inline divergence(a, res) {
	lct_ = 0;
	for (t_ : 1 .. MAXTERM) {
		if
		:: acc[a].hstart[t_] != NONE && acc[a].hstart[t_] == hh_[t_] -> lct_ = t_
		:: else -> skip
		fi
	}
	if
	:: lct_ == 0 -> res = 0
	:: else ->
		ea_ = acc[a].flush;
		eh_ = NONE;
		for (t_ : 1 .. MAXTERM) {
			if
			:: t_ > lct_ && acc[a].hstart[t_] < ea_ -> ea_ = acc[a].hstart[t_]
			:: else -> skip
			fi;
			if
			:: t_ > lct_ && hh_[t_] < eh_ -> eh_ = hh_[t_]
			:: else -> skip
			fi
		}
		if
		:: ea_ < eh_ -> res = ea_
		:: else -> res = eh_
		fi
	fi
}

/* Drop acceptor a's records at and above LSN d (d <= flush). */
inline truncate_log(a, d) {
	for (p_ : 0 .. MAXLSN - 1) {
		if
		:: p_ >= d -> acc[a].log[p_] = 0
		:: else -> skip
		fi
	}
	if
	:: d < acc[a].flush -> acc[a].flush = d
	:: else -> skip
	fi
}
