-- Every create inserts an operation and an instance and then updates both;
-- every callback inserts a nonce (reaped later). The dead row versions these
-- leave slow every index lookup until autovacuum reclaims them, and by
-- default it waits for a fifth of a table to be dead. Here it starts at one
-- per cent (docs/benchmarks.md: a second burst of creates on a fresh store
-- runs at about 0.6× the first by default; these settings help when
-- autovacuum gets to run, which on a saturated two-core machine it may not).
ALTER TABLE operations SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE instances SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE seen_nonces SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
