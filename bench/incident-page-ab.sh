#!/usr/bin/env bash
# One incident's page on PostgreSQL, the query before migration 9 against
# the one after, on the same synthetic data: 2,000,000 events of 1,000
# hosts (2,000 each, ~1.7 KB bodies), one incident per host holding all of
# its events (a helper that keeps coming back). Prints p50/p95 of 40 pages
# of 101 events per round, alternating old and new. SQL only, no HTTP.
#
#   bench/incident-page-ab.sh [POSTGRES_URL]   (default: the test database)
#
# Creates and drops the schema `incab`.
set -euo pipefail
U=${1:-postgres://postgres@127.0.0.1:5432/test}
psql -q "$U" <<'SQL'
DROP SCHEMA IF EXISTS incab CASCADE; CREATE SCHEMA incab; SET search_path = incab;
CREATE TABLE events (id BIGSERIAL PRIMARY KEY, host_id BIGINT NOT NULL, seq BIGINT NOT NULL, body TEXT NOT NULL);
CREATE TABLE incident_events (incident_id BIGINT NOT NULL, event_id BIGINT NOT NULL, seq BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (incident_id, event_id));
CREATE UNIQUE INDEX incident_events_event ON incident_events (event_id);
INSERT INTO events (host_id, seq, body) SELECT (g % 1000) + 1, g / 1000 + 1, repeat('x', 1700) FROM generate_series(0, 1999999) g;
INSERT INTO incident_events (incident_id, event_id, seq) SELECT host_id, id, seq FROM events;
CREATE INDEX incident_events_order ON incident_events (incident_id, seq, event_id);
ANALYZE;
SQL

old="SELECT e.id, e.seq, e.body FROM incab.incident_events ie JOIN incab.events e ON e.id = ie.event_id WHERE ie.incident_id = \$1 AND (e.seq > \$2 OR (e.seq = \$2 AND e.id > \$3)) ORDER BY e.seq, e.id LIMIT 101"
new="SELECT e.id, e.seq, e.body FROM incab.incident_events ie JOIN incab.events e ON e.id = ie.event_id WHERE ie.incident_id = \$1 AND (ie.seq > \$2 OR (ie.seq = \$2 AND ie.event_id > \$3)) ORDER BY ie.seq, ie.event_id LIMIT 101"
for q in old new old new; do
  sql=${!q}
  { echo "PREPARE p(bigint,bigint,bigint) AS $sql;"; echo '\timing on'
    for i in $(seq 1 40); do echo "EXECUTE p($(( (RANDOM % 1000) + 1 )), -9223372036854775808, -9223372036854775808);"; done; } \
   | psql -q "$U" 2>&1 | grep "^Time" | awk '{print $2}' | sort -n | awk -v q=$q '{a[NR]=$1} END {printf "%s: p50 %.1f ms, p95 %.1f ms (n=%d)\n", q, a[int(NR*0.5)], a[int(NR*0.95)], NR}'
done
psql -q "$U" -c "DROP SCHEMA incab CASCADE"
