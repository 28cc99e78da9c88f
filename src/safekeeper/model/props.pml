/* SPDX-License-Identifier: Apache-2.0 */
/* props.pml -- the safety properties (a), (b), (c) and internal invariants. */

/*
 * The properties are checked as assertions at the steps that can break
 * them; each assertion names a hidden flag so that a counterexample says
 * which property failed:
 *   (a) prop_a_commit_survives: a record acknowledged to a client at LSN p
 *       in term t is at p in the log of every compute elected in a later
 *       term, and no other record is ever acknowledged at p.
 *   (b) prop_b_one_compute_commits_per_term: at most one compute gets
 *       commits acknowledged in a term.
 *   (c) prop_c_learner_reads_committed: whatever a learner reads under the
 *       commit rule of term t is at that LSN in every later elected log,
 *       agrees with every other learner and with every client ack.
 * NO_PROP_A, NO_PROP_B, NO_PROP_C turn one assertion off, so a broken
 * variant can be shown to fail each property on its own.
 * Reachability witnesses (WITNESS_*) assert that some interesting step
 * never happens; the checker must refute them, which shows the model
 * really reaches that step and the properties are not vacuous.
 * Internal invariants (skipped with NO_INVARIANTS, which the broken
 * variants use so that they must fail on a property):
 *   inv_log_matches_term: an acceptor whose last log term is t holds a
 *       prefix of the log of term t's compute (histories identify logs).
 *   inv_one_election_per_term: at most one elector chooses a log per term.
 */

/*
 * flag = 0 unless every log elected in a term above ct holds record rec
 * at LSN pos. Uses k_.
 */
inline later_elections_keep(pos, rec, ct, flag) {
	for (k_ : 0 .. NSLOT - 1) {
		if
		:: ((elected >> k_) & 1) && SLOT_TERM(k_) > ct && elog[k_].r[pos] != rec -> flag = 0
		:: else -> skip
		fi
	}
}

/*
 * Called when elector e chooses its log for term T_ (held in el[e].blog,
 * E_ records): every earlier commit and every earlier learner read must
 * be in it. A record missing beyond E_ reads as 0 and fails.
 */
inline check_choice(e) {
	prop_a_commit_survives = 1;
	prop_c_learner_reads_committed = 1;
	for (p_ : 0 .. MAXLSN - 1) {
		if
		:: acked[p_] != 0 && ackterm[p_] < T_ && el[e].blog[p_] != acked[p_] ->
			prop_a_commit_survives = 0
		:: else -> skip
		fi;
		if
		:: learned[p_] != 0 && lrnterm[p_] < T_ && el[e].blog[p_] != learned[p_] ->
			prop_c_learner_reads_committed = 0
		:: else -> skip
		fi
	}
#ifndef NO_PROP_A
	assert(prop_a_commit_survives);
#endif
#ifndef NO_PROP_C
	assert(prop_c_learner_reads_committed);
#endif
#ifndef NO_INVARIANTS
	inv_one_election_per_term = !((elected >> SLOT(T_, 1 - e)) & 1);
	assert(inv_one_election_per_term);
#endif
}

/*
 * Called when elector e's compute acknowledges record r_ at LSN p_ in
 * term T_ to its clients; records the ack in the ghost state.
 */
inline check_ack(e) {
#ifdef WITNESS_ACK_AFTER_TAKEOVER
	/* a compute of term >= 2 that took over a non-empty log commits */
	witness_ack_after_takeover = !(T_ >= 2 && el[e].estart > 0);
	assert(witness_ack_after_takeover);
#endif
	prop_b_one_compute_commits_per_term = (commitby[T_] == 0 || commitby[T_] == e + 1);
#ifndef NO_PROP_B
	assert(prop_b_one_compute_commits_per_term);
#endif
	commitby[T_] = e + 1;
	prop_a_commit_survives = (acked[p_] == 0 || acked[p_] == r_);
	later_elections_keep(p_, r_, T_, prop_a_commit_survives);
#ifndef NO_PROP_A
	assert(prop_a_commit_survives);
#endif
	prop_c_learner_reads_committed = (learned[p_] == 0 || learned[p_] == r_);
#ifndef NO_PROP_C
	assert(prop_c_learner_reads_committed);
#endif
	if
	:: acked[p_] == 0 || ackterm[p_] > T_ -> acked[p_] = r_; ackterm[p_] = T_
	:: else -> skip
	fi
}

/*
 * Called when a learner reads record r_ at LSN p_, allowed by the commit
 * rule of term llt_; records the read in the ghost state.
 */
inline check_learn() {
#ifdef WITNESS_LEARN_OLD_RECORD
	/* a record written in an older term becomes readable in a newer one */
	witness_learn_old_record = !(SLOT_TERM(r_) < llt_);
	assert(witness_learn_old_record);
#endif
	if
	:: learned[p_] != r_ ->
		printf("MODEL learner_reads lsn=%d record=%d commit_term=%d\n", p_, r_, llt_)
	:: else -> skip
	fi;
	prop_c_learner_reads_committed = (learned[p_] == 0 || learned[p_] == r_) &&
	                                 (acked[p_] == 0 || acked[p_] == r_);
	later_elections_keep(p_, r_, llt_, prop_c_learner_reads_committed);
#ifndef NO_PROP_C
	assert(prop_c_learner_reads_committed);
#endif
	if
	:: learned[p_] == 0 || lrnterm[p_] > llt_ -> learned[p_] = r_; lrnterm[p_] = llt_
	:: else -> skip
	fi
}

/*
 * Log matching: acceptor a's records below its flush equal those of the
 * compute of its last log term. Uses llt_, k_, p_.
 */
inline check_log_matching(a) {
#ifndef NO_INVARIANTS
	inv_log_matches_term = 1;
	last_log_term(a, llt_);
	for (k_ : 0 .. NELEC - 1) {
		if
		:: llt_ != 0 && ((elected >> SLOT(llt_, k_)) & 1) ->
			for (p_ : 0 .. MAXLSN - 1) {
				if
				:: p_ < acc[a].flush && acc[a].log[p_] != elog[SLOT(llt_, k_)].r[p_] ->
					inv_log_matches_term = 0
				:: else -> skip
				fi
			}
		:: else -> skip
		fi
	}
	assert(inv_log_matches_term);
#else
	skip
#endif
}
