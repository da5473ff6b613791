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
