-- Fleet-sized reads without work in proportion to the fleet (issue 13).
-- Each host carries its own "needs attention" counters, kept up to date by
-- ingest in the transaction that changes its findings, gaps and chain
-- breaks (collector/src/store/ingest.rs, UPDATE_HOST), and a flag derived
-- from them with a partial index, so `?attention=true` and the fleet page
-- are a walk of that index. The fleet's totals live in fleet_totals, whose
-- rows ingest and enrolment increment in SQL; readers add up its rows.
-- There are several rows (slots, a host uses slot id % 64) so that
-- collectors sharing one PostgreSQL do not all wait on one row's lock
-- until commit; only the sum over slots means anything, so a slot may go
-- negative. postgres/0008_fleet_counters.sql is the same change.

ALTER TABLE hosts ADD COLUMN open_findings  BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN gap_count      BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN missing_events BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN break_count    BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN attention      BOOLEAN NOT NULL DEFAULT FALSE;

-- Fill them for what is stored (only hosts with a problem need a change).
UPDATE hosts SET
    open_findings  = (SELECT COUNT(*) FROM findings f WHERE f.host_id = hosts.id AND f.is_open),
    gap_count      = (SELECT COUNT(*) FROM gaps g WHERE g.host_id = hosts.id),
    missing_events = (SELECT COALESCE(SUM(g.last_seq - g.first_seq + 1), 0) FROM gaps g WHERE g.host_id = hosts.id),
    break_count    = (SELECT COUNT(*) FROM chain_breaks b WHERE b.host_id = hosts.id)
 WHERE id IN (SELECT host_id FROM findings WHERE is_open
              UNION SELECT host_id FROM gaps UNION SELECT host_id FROM chain_breaks);
UPDATE hosts SET attention = (open_findings > 0 OR gap_count > 0 OR break_count > 0)
 WHERE open_findings > 0 OR gap_count > 0 OR break_count > 0;

CREATE INDEX hosts_attention ON hosts (hostname, id) WHERE attention;

CREATE TABLE fleet_totals (
    slot            INTEGER PRIMARY KEY,
    hosts           BIGINT  NOT NULL DEFAULT 0,
    events          BIGINT  NOT NULL DEFAULT 0,
    attention       BIGINT  NOT NULL DEFAULT 0,
    open_findings   BIGINT  NOT NULL DEFAULT 0,
    hosts_with_gaps BIGINT  NOT NULL DEFAULT 0,
    missing_events  BIGINT  NOT NULL DEFAULT 0,
    chain_breaks    BIGINT  NOT NULL DEFAULT 0
);
WITH RECURSIVE s (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 63)
INSERT INTO fleet_totals (slot) SELECT n FROM s;
-- What is stored so far goes into slot 0.
UPDATE fleet_totals SET
    hosts           = (SELECT COUNT(*) FROM hosts),
    events          = (SELECT COALESCE(SUM(event_count), 0) FROM hosts),
    attention       = (SELECT COUNT(*) FROM hosts WHERE attention),
    open_findings   = (SELECT COALESCE(SUM(open_findings), 0) FROM hosts),
    hosts_with_gaps = (SELECT COUNT(*) FROM hosts WHERE gap_count > 0),
    missing_events  = (SELECT COALESCE(SUM(missing_events), 0) FROM hosts),
    chain_breaks    = (SELECT COALESCE(SUM(break_count), 0) FROM hosts)
 WHERE slot = 0;
