-- posray PostgreSQL schema, applied idempotently by `posray up` (posray.adapters.pg_schema).
CREATE TABLE IF NOT EXISTS posray_schema (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());

CREATE TABLE IF NOT EXISTS merchants (
    merchant_id text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every change to a terminal takes a new revision, so hot-path caches can poll for changes.
CREATE SEQUENCE IF NOT EXISTS terminal_revision;
CREATE TABLE IF NOT EXISTS terminals (
    terminal_id text PRIMARY KEY,
    merchant_id text NOT NULL REFERENCES merchants (merchant_id),
    key_version int  NOT NULL DEFAULT 1,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    revision    bigint NOT NULL DEFAULT nextval('terminal_revision')
);
CREATE INDEX IF NOT EXISTS terminals_revision ON terminals (revision);

-- The ledger: append-only; one row per recorded document, one header per batch.
CREATE TABLE IF NOT EXISTS ledger_batches (
    shard        int         NOT NULL,
    batch_no     bigint      NOT NULL,
    first_seq    bigint      NOT NULL,
    last_seq     bigint      NOT NULL,
    merkle_root  bytea       NOT NULL,
    prev_hash    bytea       NOT NULL,
    header_hash  bytea       NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (shard, batch_no)
);

CREATE TABLE IF NOT EXISTS ledger_entries (
    shard        int         NOT NULL,
    seq          bigint      NOT NULL,
    batch_no     bigint      NOT NULL,
    leaf_index   int         NOT NULL,
    terminal_id  text        NOT NULL,
    counter      bigint      NOT NULL,
    issued_at    timestamptz NOT NULL,
    accepted_at  timestamptz NOT NULL,
    total_minor  bigint      NOT NULL,
    record       bytea       NOT NULL,
    leaf_hash    bytea       NOT NULL,
    PRIMARY KEY (shard, seq)
);
CREATE INDEX IF NOT EXISTS ledger_entries_terminal ON ledger_entries (terminal_id, counter);

-- Per-shard transparency log: hashes of complete subtrees at heights 4, 8, 12, ... (level 0,
-- the leaf hashes, live in ledger_entries). Written with the batch that completes them.
CREATE TABLE IF NOT EXISTS tlog_nodes (
    shard  int      NOT NULL,
    level  smallint NOT NULL,
    idx    bigint   NOT NULL,
    hash   bytea    NOT NULL,
    PRIMARY KEY (shard, level, idx)
);

-- Signed tree heads (C2SP tlog-checkpoint notes signed with the operator's Ed25519 key).
CREATE TABLE IF NOT EXISTS checkpoints (
    shard      int         NOT NULL,
    tree_size  bigint      NOT NULL,
    root_hash  bytea       NOT NULL,
    note       text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (shard, tree_size)
);

CREATE OR REPLACE FUNCTION posray_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'posray: % on % is refused, the ledger is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE OR REPLACE TRIGGER ledger_batches_no_change BEFORE UPDATE OR DELETE ON ledger_batches
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER ledger_batches_no_truncate BEFORE TRUNCATE ON ledger_batches
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER ledger_entries_no_change BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();

CREATE OR REPLACE TRIGGER tlog_nodes_no_change BEFORE UPDATE OR DELETE ON tlog_nodes
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER tlog_nodes_no_truncate BEFORE TRUNCATE ON tlog_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER checkpoints_no_change BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();

INSERT INTO posray_schema (version) VALUES (1) ON CONFLICT DO NOTHING;
INSERT INTO posray_schema (version) VALUES (2) ON CONFLICT DO NOTHING;

-- Version 3: the merchant API. Bumping token_version revokes every token issued before
-- (tokens are verified with the operator's key; only their version is looked up).
ALTER TABLE merchants ADD COLUMN IF NOT EXISTS token_version int NOT NULL DEFAULT 1;
-- A merchant's terminals, and its documents of a day: terminal by terminal, by acceptance time.
-- (On a large existing ledger, create the second one by hand first with CREATE INDEX
-- CONCURRENTLY under the same name: this plain CREATE INDEX blocks appends while it builds.)
CREATE INDEX IF NOT EXISTS terminals_merchant ON terminals (merchant_id, terminal_id);
CREATE INDEX IF NOT EXISTS ledger_entries_terminal_accepted ON ledger_entries (terminal_id, accepted_at);
INSERT INTO posray_schema (version) VALUES (3) ON CONFLICT DO NOTHING;

-- Version 4: the number of logical shards, fixed when the ledger is created. A terminal's shard
-- is SHA-256(terminal_id) mod this number: another number would move terminals to other chains
-- and other idempotency keys (a resent sale would be captured twice), so every component
-- compares its configuration with this row before it touches a shard (posray.adapters.pg).
CREATE TABLE IF NOT EXISTS posray_layout (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    shard_count int NOT NULL CHECK (shard_count BETWEEN 1 AND 65536),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER posray_layout_no_change BEFORE UPDATE OR DELETE ON posray_layout
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER posray_layout_no_truncate BEFORE TRUNCATE ON posray_layout
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
INSERT INTO posray_schema (version) VALUES (4) ON CONFLICT DO NOTHING;

-- Version 5: fencing between capture and ledger (docs/reliability.md, "Fencing").
-- A capture store may hand out sequences of a shard only under the shard's latest fence epoch,
-- established here from the ledger's height, and only up to what the ledger reserved for it.
-- A fence also records what the store it replaced may have acknowledged and lost.
CREATE TABLE IF NOT EXISTS capture_fences (
    shard        int         NOT NULL,
    epoch        bigint      NOT NULL,
    store        text        NOT NULL,   -- the capture store's identity (address + key prefix)
    floor_seq    bigint      NOT NULL,   -- new sequences start above this
    ledger_seq   bigint      NOT NULL,   -- the ledger's height when the fence was set
    store_seq    bigint      NOT NULL,   -- the store's counter when the fence was set
    lost_from    bigint,                 -- sequences acknowledged under the previous epoch and
    lost_to      bigint,                 --   lost by the store (inclusive range), if any
    lost_exact   boolean     NOT NULL DEFAULT false,  -- false: an upper bound (the reservation)
    reason       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, epoch)
);
CREATE TABLE IF NOT EXISTS capture_reservations (
    shard        int         NOT NULL,
    epoch        bigint      NOT NULL,
    reserved_seq bigint      NOT NULL,   -- the store may hand out sequences up to this one
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, epoch, reserved_seq)
);
-- Captured documents whose (shard, seq) the ledger already holds with another document: the
-- ledger writer stops the shard and writes them here; an operator's release lets it go on.
CREATE TABLE IF NOT EXISTS capture_conflicts (
    shard          int         NOT NULL,
    seq            bigint      NOT NULL,
    document_hash  bytea       NOT NULL,
    document       bytea       NOT NULL,
    accepted_at    timestamptz NOT NULL,
    detected_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, seq, document_hash)
);
CREATE TABLE IF NOT EXISTS capture_conflicts_released (
    shard          int         NOT NULL,
    seq            bigint      NOT NULL,
    document_hash  bytea       NOT NULL,
    released_by    text        NOT NULL,
    released_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, seq, document_hash)
);
CREATE OR REPLACE TRIGGER capture_fences_no_change BEFORE UPDATE OR DELETE ON capture_fences
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER capture_fences_no_truncate BEFORE TRUNCATE ON capture_fences
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER capture_reservations_no_change BEFORE UPDATE OR DELETE ON capture_reservations
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER capture_reservations_no_truncate BEFORE TRUNCATE ON capture_reservations
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER capture_conflicts_no_change BEFORE UPDATE OR DELETE ON capture_conflicts
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER capture_conflicts_no_truncate BEFORE TRUNCATE ON capture_conflicts
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER capture_conflicts_released_no_change BEFORE UPDATE OR DELETE ON capture_conflicts_released
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER capture_conflicts_released_no_truncate BEFORE TRUNCATE ON capture_conflicts_released
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
INSERT INTO posray_schema (version) VALUES (5) ON CONFLICT DO NOTHING;

-- Version 6: a fence remembers whether the store lacked idempotency keys it had held (flushed,
-- rewound, replaced); for the keys' lifetime after that, capture asks the ledger whether a
-- document was already recorded, so a terminal's resend is never recorded twice.
ALTER TABLE capture_fences ADD COLUMN IF NOT EXISTS keys_lost boolean NOT NULL DEFAULT false;
INSERT INTO posray_schema (version) VALUES (6) ON CONFLICT DO NOTHING;

-- Version 7: the ledger partitioned by day (docs/operations.md, "Partitions and retention").
-- Every row of a batch lives in the ledger_entries partition of the UTC day its batch was
-- recorded (ledger_batches.recorded_on, derived from recorded_at), so a day's indexes stay the
-- size of a day and a day can be detached once it is archived. A unique index on a partitioned
-- table must contain the partition key, so the primary key is (shard, seq, recorded_on); with
-- one day per partition it is unique (shard, seq) inside each partition, and across partitions
-- (shard, seq) stays unique because (1) a shard's batches cover disjoint, increasing sequence
-- ranges (posray_batch_in_order) and (2) every row lies inside its batch's range and in its
-- batch's day (posray_entries_in_batch): a sequence belongs to one batch, hence to one day.
ALTER TABLE ledger_batches ADD COLUMN IF NOT EXISTS recorded_on date
    GENERATED ALWAYS AS ((recorded_at AT TIME ZONE 'UTC')::date) STORED;
CREATE INDEX IF NOT EXISTS ledger_batches_last_seq ON ledger_batches (shard, last_seq);

CREATE OR REPLACE FUNCTION posray_batch_in_order() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous bigint;
BEGIN
    -- One writer at a time per shard, so two batches cannot both pass the check below.
    PERFORM pg_advisory_xact_lock(7263007, NEW.shard);
    SELECT last_seq INTO previous FROM ledger_batches WHERE shard = NEW.shard ORDER BY last_seq DESC LIMIT 1;
    IF NEW.last_seq < NEW.first_seq OR NEW.first_seq <= coalesce(previous, 0) THEN
        RAISE EXCEPTION 'posray: batch % of shard % covers sequences % to %, the shard already holds up to %',
            NEW.batch_no, NEW.shard, NEW.first_seq, NEW.last_seq, coalesce(previous, 0)
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER ledger_batches_in_order BEFORE INSERT ON ledger_batches
    FOR EACH ROW EXECUTE FUNCTION posray_batch_in_order();

CREATE OR REPLACE FUNCTION posray_entries_in_batch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- Per batch written, not per row: one index probe per batch.
    SELECT n.shard, n.batch_no INTO bad
    FROM (SELECT shard, batch_no, min(seq) AS seq_min, max(seq) AS seq_max,
                 min(recorded_on) AS day_min, max(recorded_on) AS day_max
          FROM posray_new_entries GROUP BY shard, batch_no) n
    LEFT JOIN ledger_batches b ON b.shard = n.shard AND b.batch_no = n.batch_no
    WHERE b.shard IS NULL OR n.seq_min < b.first_seq OR n.seq_max > b.last_seq
       OR n.day_min <> b.recorded_on OR n.day_max <> b.recorded_on
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'posray: rows of batch % of shard % lie outside its sequences or its day',
            bad.batch_no, bad.shard USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

-- Creates the missing daily partitions first_day..last_day (at most 366), each with the
-- append-only triggers (row triggers are cloned from the parent; TRUNCATE needs its own).
-- SECURITY DEFINER: posray's INSERT-only role may call it (the LedgerWriter does, ahead of time).
-- A new partition is created on its own and then attached, which takes only SHARE UPDATE
-- EXCLUSIVE on ledger_entries: lookups and appends go on meanwhile.
CREATE OR REPLACE FUNCTION posray_ledger_partitions(first_day date, last_day date) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    day date := first_day;
    part text;
    made int := 0;
BEGIN
    IF last_day - first_day > 366 THEN
        RAISE EXCEPTION 'posray: at most 366 partitions at once, asked for % to %', first_day, last_day;
    END IF;
    PERFORM pg_advisory_xact_lock(7263008);
    WHILE day <= last_day LOOP
        part := 'ledger_entries_' || to_char(day, 'YYYYMMDD');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE ledger_entries INCLUDING DEFAULTS)', part);
            EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT'
                           ' EXECUTE FUNCTION posray_append_only()', part || '_no_truncate', part);
            EXECUTE format('ALTER TABLE ledger_entries ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           part, day, day + 1);
            made := made + 1;
        ELSIF NOT EXISTS (SELECT 1 FROM pg_inherits
                          WHERE inhrelid = to_regclass(part) AND inhparent = 'ledger_entries'::regclass) THEN
            RAISE EXCEPTION 'posray: the partition of % was detached (retention); it cannot be written again', day;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN made;
END $$;

REVOKE EXECUTE ON FUNCTION posray_ledger_partitions(date, date) FROM PUBLIC;

-- The migration from version 6: the unpartitioned table is copied into the partitioned one, row
-- by row checked against its batch, then dropped; all in this script's one transaction.
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('ledger_entries')) = 'r' THEN
        ALTER TABLE ledger_entries RENAME TO ledger_entries_v6;
        ALTER INDEX ledger_entries_pkey RENAME TO ledger_entries_v6_pkey;
        ALTER INDEX IF EXISTS ledger_entries_terminal RENAME TO ledger_entries_v6_terminal;
        ALTER INDEX IF EXISTS ledger_entries_terminal_accepted RENAME TO ledger_entries_v6_terminal_accepted;
        CREATE TABLE ledger_entries (
            shard        int         NOT NULL,
            seq          bigint      NOT NULL,
            batch_no     bigint      NOT NULL,
            leaf_index   int         NOT NULL,
            terminal_id  text        NOT NULL,
            counter      bigint      NOT NULL,
            issued_at    timestamptz NOT NULL,
            accepted_at  timestamptz NOT NULL,
            total_minor  bigint      NOT NULL,
            record       bytea       NOT NULL,
            leaf_hash    bytea       NOT NULL,
            recorded_on  date        NOT NULL,   -- the UTC day of the batch (its partition)
            PRIMARY KEY (shard, seq, recorded_on)
        ) PARTITION BY RANGE (recorded_on);
        CREATE INDEX ledger_entries_terminal ON ledger_entries (terminal_id, counter);
        CREATE INDEX ledger_entries_terminal_accepted ON ledger_entries (terminal_id, accepted_at);
        CREATE TRIGGER ledger_entries_no_change BEFORE UPDATE OR DELETE ON ledger_entries
            FOR EACH ROW EXECUTE FUNCTION posray_append_only();
        CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
            FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
        CREATE TRIGGER ledger_entries_in_batch AFTER INSERT ON ledger_entries
            REFERENCING NEW TABLE AS posray_new_entries
            FOR EACH STATEMENT EXECUTE FUNCTION posray_entries_in_batch();
        PERFORM posray_ledger_partitions(d, d)
            FROM (SELECT DISTINCT recorded_on AS d FROM ledger_batches) days;
        INSERT INTO ledger_entries (shard, seq, batch_no, leaf_index, terminal_id, counter, issued_at,
                                    accepted_at, total_minor, record, leaf_hash, recorded_on)
        SELECT e.shard, e.seq, e.batch_no, e.leaf_index, e.terminal_id, e.counter, e.issued_at,
               e.accepted_at, e.total_minor, e.record, e.leaf_hash, b.recorded_on
        FROM ledger_entries_v6 e JOIN ledger_batches b ON b.shard = e.shard AND b.batch_no = e.batch_no
        ORDER BY e.shard, e.seq;
        IF (SELECT count(*) FROM ledger_entries) <> (SELECT count(*) FROM ledger_entries_v6) THEN
            RAISE EXCEPTION 'posray: migration to version 7: rows without their batch in ledger_entries';
        END IF;
        DROP TABLE ledger_entries_v6;
    END IF;
END $$;
-- Partitions detached by `posray ledger detach` (retention): what they held, which archives held
-- it then. A detached day is never written again (posray_ledger_partitions refuses it).
CREATE TABLE IF NOT EXISTS ledger_detached (
    partition    text        PRIMARY KEY,
    day          date        NOT NULL,
    rows         bigint      NOT NULL,
    last_seqs    jsonb       NOT NULL,   -- per shard, the last sequence of the day
    archives     jsonb       NOT NULL,   -- per archive, per shard, the last sequence it held
    detached_at  timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER ledger_detached_no_change BEFORE UPDATE OR DELETE ON ledger_detached
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER ledger_detached_no_truncate BEFORE TRUNCATE ON ledger_detached
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
CREATE INDEX IF NOT EXISTS ledger_batches_recorded_on ON ledger_batches (recorded_on);
-- Leaf hashes a detached day leaves behind: the log stores subtrees of 16 leaves and up, so the
-- proofs of later receipts still need the leaves of a 16-leaf block the day shares with them.
CREATE TABLE IF NOT EXISTS ledger_kept_leaves (
    shard      int    NOT NULL,
    seq        bigint NOT NULL,
    leaf_hash  bytea  NOT NULL,
    PRIMARY KEY (shard, seq)
);
CREATE OR REPLACE TRIGGER ledger_kept_leaves_no_change BEFORE UPDATE OR DELETE ON ledger_kept_leaves
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER ledger_kept_leaves_no_truncate BEFORE TRUNCATE ON ledger_kept_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
-- Yesterday to a week ahead exist after every `posray up`; the LedgerWriter keeps a week ahead.
SELECT posray_ledger_partitions((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7);
INSERT INTO posray_schema (version) VALUES (7) ON CONFLICT DO NOTHING;

-- Witness cosignatures (self-contained block: renumber freely when another version lands first).
-- Version 8: independent witnesses (c2sp.org/tlog-witness) cosign the shards' checkpoints; posray
-- stores each witness's cosignature line (c2sp.org/tlog-cosignature) of each checkpoint size and
-- publishes it appended to the checkpoint. `witness` is the witness key's "<name>+<key ID hex>".
CREATE TABLE IF NOT EXISTS witness_cosignatures (
    shard      int         NOT NULL,
    tree_size  bigint      NOT NULL,
    witness    text        NOT NULL,
    line       text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (shard, tree_size, witness)
);
CREATE INDEX IF NOT EXISTS witness_cosignatures_witness ON witness_cosignatures (shard, witness, tree_size);
CREATE OR REPLACE TRIGGER witness_cosignatures_no_change BEFORE UPDATE OR DELETE ON witness_cosignatures
    FOR EACH ROW EXECUTE FUNCTION posray_append_only();
CREATE OR REPLACE TRIGGER witness_cosignatures_no_truncate BEFORE TRUNCATE ON witness_cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION posray_append_only();
INSERT INTO posray_schema (version) VALUES (8) ON CONFLICT DO NOTHING;
