/*
 * sqlite.c: the embedded backend. One database file in WAL mode: the writer thread owns one
 * read-write connection; reads take a read-only connection from a small pool, so that a
 * connection is never used by two threads at once and readers never wait for the writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/backend.h"
#include "store/sqlite_listen.h"

#define MODULE "store"
/* A reader meets a lock only around checkpoints and schema changes; wait rather than fail. */
#define BUSY_TIMEOUT_MS 5000

/* ---- schema ---------------------------------------------------------------------------- */

/*
 * Forward migrations, in order: the database's PRAGMA user_version counts the steps applied.
 * Never edit a step that has shipped; add one. AUTOINCREMENT keeps seq from being reused
 * after the newest events are deleted, so that a stream's cursor never points at another event.
 */
static const char *const migrations[] = {
    "CREATE TABLE namespaces ("
    "  name TEXT PRIMARY KEY,"
    "  created_us INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  ns TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  received_us INTEGER NOT NULL,"
    "  born_inside INTEGER NOT NULL,"
    "  event TEXT NOT NULL,"
    "  UNIQUE (ns, id, source)"
    ");"
    "CREATE INDEX events_ns_seq ON events (ns, seq);"
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY,"
    "  value"
    ") WITHOUT ROWID;",
    /* Retention of a namespace's own; NULL: the server's default applies. */
    "ALTER TABLE namespaces ADD COLUMN retention_max_age_us INTEGER;"
    "ALTER TABLE namespaces ADD COLUMN retention_max_count INTEGER;",
    /* Filters: named JavaScript function bodies of a namespace. */
    "CREATE TABLE filters ("
    "  ns TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  updated_us INTEGER NOT NULL,"
    "  PRIMARY KEY (ns, name)"
    ") WITHOUT ROWID;",
    /* Listeners (an opaque JSON spec and counters), the events an `and` listener holds toward
     * a set, and the deliveries not yet finished (sqlite_listen.c). */
    "CREATE TABLE listeners ("
    "  id TEXT PRIMARY KEY,"
    "  ns TEXT NOT NULL,"
    "  created_us INTEGER NOT NULL,"
    "  spec TEXT NOT NULL,"
    "  delivered INTEGER NOT NULL DEFAULT 0,"
    "  failed INTEGER NOT NULL DEFAULT 0,"
    "  dead_lettered INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX listeners_ns ON listeners (ns, id);"
    "CREATE TABLE listener_collect ("
    "  listener TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  received_us INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  PRIMARY KEY (listener, key, type)"
    ") WITHOUT ROWID;"
    "CREATE TABLE deliveries ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  listener TEXT NOT NULL,"
    "  ns TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  payload TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  dead_letter INTEGER NOT NULL DEFAULT 0,"
    "  due_us INTEGER NOT NULL,"
    "  created_us INTEGER NOT NULL,"
    "  last_status INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT"
    ");"
    "CREATE INDEX deliveries_due ON deliveries (due_us, id);"
    "CREATE INDEX deliveries_listener ON deliveries (listener);"
    "CREATE INDEX deliveries_seq ON deliveries (seq);",
    /* A saturated target's due deliveries are read by listener in due order. */
    "DROP INDEX deliveries_listener;"
    "CREATE INDEX deliveries_listener ON deliveries (listener, due_us, id);",
    /* The source's outbox: events born inside, with their own copy of the event, so that
     * retention or a deleted namespace never takes one away before it went out. */
    "CREATE TABLE outbox ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  ns TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  event TEXT NOT NULL,"
    "  created_us INTEGER NOT NULL"
    ");",
    /* The newest seq retention has removed from a namespace, so that a live stream that resumes
     * below it can tell its client which events it will not see. */
    "ALTER TABLE namespaces ADD COLUMN trimmed_seq INTEGER NOT NULL DEFAULT 0;",
    /* Why a delivery turned to its dead-letter sink (the target's last status and answer), kept
     * apart from last_status and last_error, which the dead-letter sink's own failures
     * overwrite. NULL: not dead-lettered, or by a version that kept it in last_*. */
    "ALTER TABLE deliveries ADD COLUMN error_status INTEGER;"
    "ALTER TABLE deliveries ADD COLUMN error_data TEXT;",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ---- statements ------------------------------------------------------------------------ */

typedef enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_NS_PRESENT,
    ST_INSERT,
    ST_FIND_SEQ,
    ST_NS_INSERT,
    ST_NS_DELETE,
    ST_NS_EVENTS_DELETE,
    ST_NS_LIST,
    ST_PROBE,
    ST_HISTORY,
    ST_SINCE,
    ST_GET,
    ST_COUNT_NS,
    ST_COUNT_ALL,
    ST_LAST_SEQ,
    ST_RETENTION_GET,
    ST_RETENTION_SET,
    ST_NTH_NEWEST,
    ST_TRIM_AGE,
    ST_TRIM_COUNT,
    ST_TRIMMED_SET,
    ST_TRIMMED_GET,
    ST_READ_BEGIN,
    ST_FILTER_FIND,
    ST_FILTER_PUT,
    ST_FILTER_DELETE,
    ST_FILTER_LIST,
    ST_NS_FILTERS_DELETE,
    ST_OUTBOX_ADD,
    ST_OUTBOX_DELETE,
    ST_OUTBOX_NEXT,
    ST_OUTBOX_COUNT,
    ST_MAX
} stmt_id_t;

#define RECORD_COLUMNS "seq, received_us, ns, event, born_inside"

static const char *const stmt_sql[ST_MAX] = {
    [ST_FILTER_FIND] = "SELECT 1 FROM filters WHERE ns = ?1 AND name = ?2",
    [ST_FILTER_PUT] = "INSERT INTO filters (ns, name, source, updated_us) VALUES (?1, ?2, ?3, ?4)"
                      " ON CONFLICT (ns, name) DO UPDATE"
                      " SET source = excluded.source, updated_us = excluded.updated_us",
    [ST_FILTER_DELETE] = "DELETE FROM filters WHERE ns = ?1 AND name = ?2",
    [ST_FILTER_LIST] = "SELECT ns, name, source, updated_us FROM filters"
                       " WHERE ?1 IS NULL OR ns = ?1 ORDER BY ns, name",
    [ST_NS_FILTERS_DELETE] = "DELETE FROM filters WHERE ns = ?1",
    [ST_OUTBOX_ADD] = "INSERT INTO outbox (ns, seq, event, created_us) VALUES (?1, ?2, ?3, ?4)",
    [ST_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?1",
    [ST_OUTBOX_NEXT] = "SELECT id, ns, seq, event, created_us FROM outbox"
                       " WHERE id > ?1 AND id <= ?3 ORDER BY id LIMIT ?2",
    [ST_OUTBOX_COUNT] = "SELECT count(*), coalesce(max(id), 0) FROM outbox",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT w",
    [ST_RELEASE] = "RELEASE w",
    [ST_ROLLBACK_TO] = "ROLLBACK TO w",
    [ST_NS_PRESENT] = "SELECT 1 FROM namespaces WHERE name = ?1",
    [ST_INSERT] = "INSERT INTO events (ns, source, id, type, received_us, born_inside, event)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                  " ON CONFLICT (ns, id, source) DO NOTHING",
    [ST_FIND_SEQ] = "SELECT seq FROM events WHERE ns = ?1 AND source = ?2 AND id = ?3",
    [ST_NS_INSERT] = "INSERT INTO namespaces (name, created_us) VALUES (?1, ?2)"
                     " ON CONFLICT (name) DO NOTHING",
    [ST_NS_DELETE] = "DELETE FROM namespaces WHERE name = ?1",
    [ST_NS_EVENTS_DELETE] = "DELETE FROM events WHERE ns = ?1",
    [ST_NS_LIST] = "SELECT name, created_us FROM namespaces ORDER BY name",
    [ST_PROBE] = "INSERT INTO meta (key, value) VALUES ('probe_us', ?1)"
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    /* instr() rather than LIKE, so that '%' and '_' in a search are plain characters. */
    [ST_HISTORY] = "SELECT " RECORD_COLUMNS " FROM events"
                   " WHERE ns = ?1 AND seq < ?2 AND seq > ?9"
                   " AND received_us >= ?3 AND received_us < ?4"
                   " AND (?5 IS NULL OR instr(type, ?5) > 0)"
                   " AND (?6 IS NULL OR source = ?6)"
                   " AND (?7 IS NULL OR instr(event, ?7) > 0)"
                   " ORDER BY seq DESC LIMIT ?8",
    [ST_SINCE] = "SELECT " RECORD_COLUMNS " FROM events WHERE ns = ?1 AND seq > ?2"
                 " AND seq <= ?4 ORDER BY seq ASC LIMIT ?3",
    /* "+seq", twice: ordering by the bare column, or bounding it, lets the planner walk
     * events_ns_seq from the newest event, testing every id on the way (hundreds of ms for a big
     * namespace); the unary plus leaves it the unique (ns, id, source) index and a sort of a row
     * or two. */
    [ST_GET] = "SELECT " RECORD_COLUMNS " FROM events WHERE ns = ?1 AND id = ?2"
               " AND (?3 IS NULL OR source = ?3) AND +seq <= ?4 ORDER BY +seq DESC LIMIT 1",
    [ST_COUNT_NS] = "SELECT count(*) FROM events WHERE ns = ?1",
    [ST_COUNT_ALL] = "SELECT count(*) FROM events",
    /* sqlite_sequence holds the highest seq ever given, deleted events included. */
    [ST_LAST_SEQ] = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
    [ST_RETENTION_GET] = "SELECT coalesce(retention_max_age_us, -1),"
                         " coalesce(retention_max_count, -1) FROM namespaces WHERE name = ?1",
    [ST_RETENTION_SET] = "UPDATE namespaces SET retention_max_age_us = ?2,"
                         " retention_max_count = ?3 WHERE name = ?1",
    /* Only among the oldest ?3, so that a step's cost is bounded even when nothing is old:
     * received_us grows with seq, bar the jitter between receipt and commit. */
    [ST_TRIM_AGE] = "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ns = ?1"
                    " ORDER BY seq LIMIT ?3) AND received_us < ?2 RETURNING seq",
    /* The seq of the event of ns that has ?3 newer ones below ?2. Walks ?3 index entries: run
     * on a reader (once per retention sweep, never per step; once per filtered page). */
    [ST_NTH_NEWEST] = "SELECT seq FROM events WHERE ns = ?1 AND seq < ?2"
                      " ORDER BY seq DESC LIMIT 1 OFFSET ?3",
    /* The cut is found beforehand, so that a step reads only the rows it deletes. */
    [ST_TRIM_COUNT] = "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ns = ?1"
                      " AND seq <= ?2 ORDER BY seq LIMIT ?3) RETURNING seq",
    [ST_TRIMMED_SET] =
        "UPDATE namespaces SET trimmed_seq = ?2 WHERE name = ?1 AND trimmed_seq < ?2",
    [ST_TRIMMED_GET] = "SELECT trimmed_seq FROM namespaces WHERE name = ?1",
    [ST_READ_BEGIN] = "BEGIN",
};

/* A connection with its prepared statements, made on first use and kept. */
typedef struct conn {
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_MAX];
    struct conn *next; /* in the pool of idle readers */
} conn_t;

typedef struct sqlite_db {
    char *path;
    int lock_fd; /* <data_dir>/weir.lock, held exclusively while the store is open */
    bool no_sync;
    conn_t *writer;
    int wal_fd; /* the WAL, opened by the syncer to fsync it; -1 until then */
    /* Checkpoints (see the checkpointer thread): its connection, used under ckpt_conn_lock;
     * what wakes it; the WAL's length at the commit that last woke it (the writer's); and
     * whether the writer should copy the WAL's end before its next transaction. */
    conn_t *checkpointer;
    pthread_mutex_t ckpt_conn_lock;
    pthread_mutex_t ckpt_lock;
    pthread_cond_t ckpt_wake;
    bool ckpt_due;
    bool ckpt_closing;
    bool ckpt_started;
    pthread_t ckpt_thread;
    int ckpt_woken_at;
    int wal_frames;    /* the WAL's length after the writer's last commit */
    int ckpt_force_at; /* the length past which the writer copies it itself (FORCE_FRAMES) */
    atomic_bool restart_wanted;
    bool txn_lost; /* an error ended the writer's transaction before its commit */
    /* The namespace the open transaction last found present ("" for none): a group's events
     * mostly go to one namespace, which then costs one lookup per group, not one per event. */
    char ns_known[WEIR_STORE_NS_NAME_MAX + 1];
    pthread_mutex_t pool_lock;
    conn_t *idle;
    weir_sqlite_listen_t *listen; /* listeners and deliveries (sqlite_listen.c) */
    /* The outbox: its bound (0: no outbox), its committed depth, and what the writer's open
     * transaction and write changed of it (applied once they commit). */
    size_t outbox_max;
    atomic_int_fast64_t outbox_depth;
    int64_t outbox_txn;
    int64_t outbox_write;
    atomic_uint_fast64_t outbox_overflow;
    uint64_t overflow_txn; /* events left out by the open transaction and write */
    uint64_t overflow_write;
    /* The highest outbox id queued by the open transaction and by the open write (writer
     * only), by the last commit, and by the last commit that a sync made durable: the source
     * reads no row above the durable one. */
    int64_t outbox_txn_last;
    int64_t outbox_write_last;
    atomic_int_fast64_t outbox_committed;
    atomic_int_fast64_t outbox_durable;
} sqlite_db_t;

weir_sqlite_listen_t *weir_sqlite_listen_of(void *db, sqlite3 **writer)
{
    sqlite_db_t *d = db;
    if (writer != NULL) {
        *writer = d->writer->db;
    }
    return d->listen;
}

static int log_failure(sqlite3 *db, const char *what)
{
    weir_error(MODULE, "sqlite: %s: %s", what, sqlite3_errmsg(db));
    return WEIR_EIO;
}

static sqlite3_stmt *stmt_get(conn_t *c, stmt_id_t id)
{
    if (c->stmts[id] == NULL &&
        sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[id],
                           NULL) != SQLITE_OK) {
        log_failure(c->db, stmt_sql[id]);
        return NULL;
    }
    return c->stmts[id];
}

/* Readies a statement for its next use; bindings go too, so no pointer outlives the call. */
static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a statement that has no parameters and returns no rows. */
static int exec_stmt(conn_t *c, stmt_id_t id)
{
    sqlite3_stmt *st = stmt_get(c, id);
    if (st == NULL) {
        return WEIR_EIO;
    }
    int rc = sqlite3_step(st);
    stmt_done(st);
    return rc == SQLITE_DONE ? 0 : log_failure(c->db, stmt_sql[id]);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL) {
        sqlite3_bind_null(st, i);
    } else {
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    }
}

static int64_t limit_i64(size_t limit)
{
    return limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit;
}

/* ---- connections ----------------------------------------------------------------------- */

static void conn_close(conn_t *c)
{
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < ST_MAX; i++) {
        sqlite3_finalize(c->stmts[i]);
    }
    sqlite3_close(c->db);
    weir_free(c);
}

/* Each connection is used by one thread at a time, so SQLite's own mutexes are not needed. */
static int conn_open(const char *path, bool readonly, conn_t **out)
{
    int flags = SQLITE_OPEN_NOMUTEX |
                (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    conn_t *c = weir_calloc(1, sizeof(*c));

    *out = NULL;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        weir_error(MODULE, "sqlite: cannot open %s: %s", path,
                   c->db != NULL ? sqlite3_errmsg(c->db) : "out of memory");
        conn_close(c);
        return WEIR_EIO;
    }
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    *out = c;
    return 0;
}

static conn_t *reader_take(sqlite_db_t *d)
{
    pthread_mutex_lock(&d->pool_lock);
    conn_t *c = d->idle;
    if (c != NULL) {
        d->idle = c->next;
    }
    pthread_mutex_unlock(&d->pool_lock);

    if (c == NULL) {
        conn_open(d->path, true, &c);
    }
    return c;
}

static void reader_give(sqlite_db_t *d, conn_t *c)
{
    pthread_mutex_lock(&d->pool_lock);
    c->next = d->idle;
    d->idle = c;
    pthread_mutex_unlock(&d->pool_lock);
}

/* ---- opening --------------------------------------------------------------------------- */

/* Creates dir and its missing parents, as mkdir -p does. */
static int make_dir(const char *dir, weir_err_t *err)
{
    char *p = weir_strdup(dir);

    for (char *q = p + 1; *q != '\0'; q++) {
        if (*q == '/') {
            *q = '\0';
            mkdir(p, 0750);
            *q = '/';
        }
    }
    int rc = mkdir(p, 0750) == 0 || errno == EEXIST ? 0 : errno;
    weir_free(p);
    if (rc != 0) {
        return weir_err_set(err, WEIR_EIO, "data_dir", "cannot create data directory %s: %s", dir,
                            strerror(rc));
    }
    return 0;
}

static int exec_sql(sqlite3 *db, const char *sql, weir_err_t *err)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) {
        return 0;
    }
    int rc = weir_err_set(err, WEIR_EIO, NULL, "database: %s", msg != NULL ? msg : "failed");
    weir_error(MODULE, "sqlite: %s", err != NULL ? err->msg : sql);
    sqlite3_free(msg);
    return rc;
}

static int read_version(sqlite3 *db, int *version, weir_err_t *err)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return weir_err_set(err, log_failure(db, "read schema version"), NULL,
                            "cannot read the database's schema version");
    }
    *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int apply_migrations(sqlite3 *db, int from, weir_err_t *err)
{
    char sql[64];

    if (from > SCHEMA_VERSION) {
        return weir_err_set(err, WEIR_EIO, NULL,
                            "the database has schema version %d, newer than this weir knows (%d);"
                            " run a newer weir",
                            from, SCHEMA_VERSION);
    }
    for (int v = from; v < SCHEMA_VERSION; v++) {
        int rc = exec_sql(db, migrations[v], err);
        if (rc != 0) {
            return rc;
        }
    }
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
    return exec_sql(db, sql, err);
}

/* Brings the schema up to date in one transaction: every step is applied, or none. */
static int migrate(sqlite3 *db, weir_err_t *err)
{
    int version = 0;

    int rc = exec_sql(db, "BEGIN IMMEDIATE", err);
    if (rc != 0) {
        return rc;
    }
    rc = read_version(db, &version, err);
    if (rc == 0) {
        rc = apply_migrations(db, version, err);
    }
    if (rc == 0) {
        rc = exec_sql(db, "COMMIT", err);
    }
    if (rc != 0) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (version != SCHEMA_VERSION) {
        weir_info(MODULE, "database schema migrated from version %d to %d", version,
                  SCHEMA_VERSION);
    }
    return 0;
}

/*
 * WAL lets readers run beside the writer. The writer commits without fsync and SQLite never
 * checkpoints on its own: sq_sync, on the syncer thread, makes commits durable by fsyncing the
 * WAL while the writer goes on with the next batch, and the checkpointer copies the WAL from a
 * connection of its own that syncs the WAL before copying it into the database and the database
 * before the WAL is reused. So a power loss can lose only commits that no sync has covered, and
 * those were never acknowledged.
 */
static int configure_writer(sqlite3 *db, weir_err_t *err)
{
    sqlite3_stmt *st = NULL;
    bool wal = false;

    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        wal = strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    }
    sqlite3_finalize(st);
    if (!wal) {
        log_failure(db, "journal_mode = WAL");
        return weir_err_set(err, WEIR_EIO, NULL, "cannot put the database in WAL mode");
    }
    return exec_sql(db, "PRAGMA synchronous = OFF; PRAGMA wal_autocheckpoint = 0", err);
}

/* ---- checkpoints ----------------------------------------------------------------------- */

/* Frames committed since the last checkpoint that start the next one (about 4 MiB). */
#define CHECKPOINT_STEP_FRAMES 1024
/* Past this many frames (about 16 MiB) and once a checkpoint has copied them all, the WAL is
 * started over. */
#define RESTART_FRAMES 4096
/* Past this many (about 32 MiB) the checkpointer has fallen behind the writer (a slow disk, a
 * busy machine): the writer then copies the WAL itself before its next transaction, so that the
 * WAL's length stays bounded, and commits wait for it meanwhile. */
#define FORCE_FRAMES (2 * RESTART_FRAMES)

/*
 * Copies the WAL into the database. The checkpointer's connection syncs the WAL before copying
 * it and the database before the WAL may be reused, so it may copy commits no sync has covered
 * yet. PASSIVE never waits for the writer or readers: what it cannot copy now waits for the next
 * turn. *complete says it copied every frame committed when it began.
 */
static void checkpoint(sqlite_db_t *d, int *frames, bool *complete)
{
    int log = 0;
    int copied = 0;
    pthread_mutex_lock(&d->ckpt_conn_lock);
    int rc = sqlite3_wal_checkpoint_v2(d->checkpointer->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log,
                                       &copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        log_failure(d->checkpointer->db, "checkpoint");
    }
    pthread_mutex_unlock(&d->ckpt_conn_lock);
    *frames = log;
    *complete = rc == SQLITE_OK && copied == log;
}

/*
 * The checkpointer thread, woken every CHECKPOINT_STEP_FRAMES committed frames, keeps copies
 * off the path of commits: the syncer only fsyncs. Under a steady load the writer always has a
 * transaction open on a snapshot newer than what the last checkpoint copied, and SQLite starts
 * the WAL over only in a transaction that begins with all of it copied; so once the WAL is long
 * and a checkpoint copied all it found, the writer copies what was committed since before it
 * begins its next transaction (sq_begin). That pause is one short checkpoint per RESTART_FRAMES.
 */
static void *checkpointer_main(void *arg)
{
    sqlite_db_t *d = arg;
    pthread_setname_np(pthread_self(), "weir-checkpoint");
    pthread_mutex_lock(&d->ckpt_lock);
    for (;;) {
        while (!d->ckpt_due && !d->ckpt_closing) {
            pthread_cond_wait(&d->ckpt_wake, &d->ckpt_lock);
        }
        if (d->ckpt_closing) {
            break;
        }
        d->ckpt_due = false;
        pthread_mutex_unlock(&d->ckpt_lock);

        int frames;
        bool complete;
        checkpoint(d, &frames, &complete);
        if (complete && frames >= RESTART_FRAMES) {
            atomic_store(&d->restart_wanted, true);
        }
        pthread_mutex_lock(&d->ckpt_lock);
    }
    pthread_mutex_unlock(&d->ckpt_lock);
    return NULL;
}

/* Runs on the writer thread after each commit: frames is the WAL's length. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    sqlite_db_t *d = arg;
    if (frames < d->wal_frames) { /* the WAL started over */
        d->ckpt_woken_at = 0;
        d->ckpt_force_at = FORCE_FRAMES;
    }
    d->wal_frames = frames;
    if (frames - d->ckpt_woken_at >= CHECKPOINT_STEP_FRAMES) {
        d->ckpt_woken_at = frames;
        pthread_mutex_lock(&d->ckpt_lock);
        d->ckpt_due = true;
        pthread_cond_signal(&d->ckpt_wake);
        pthread_mutex_unlock(&d->ckpt_lock);
    }
    return SQLITE_OK;
}

static int checkpointer_start(sqlite_db_t *d, weir_err_t *err)
{
    if (pthread_create(&d->ckpt_thread, NULL, checkpointer_main, d) != 0) {
        return weir_err_set(err, WEIR_EIO, NULL, "cannot start the store's checkpoint thread");
    }
    d->ckpt_started = true;
    return 0;
}

static void checkpointer_stop(sqlite_db_t *d)
{
    if (!d->ckpt_started) {
        return;
    }
    pthread_mutex_lock(&d->ckpt_lock);
    d->ckpt_closing = true;
    pthread_cond_signal(&d->ckpt_wake);
    pthread_mutex_unlock(&d->ckpt_lock);
    pthread_join(d->ckpt_thread, NULL);
    d->ckpt_started = false;
}

static void sq_close(void *db)
{
    sqlite_db_t *d = db;

    checkpointer_stop(d);
    /* Readers first: the last connection to close checkpoints and removes the WAL. */
    while (d->idle != NULL) {
        conn_t *c = d->idle;
        d->idle = c->next;
        conn_close(c);
    }
    if (d->wal_fd >= 0) {
        close(d->wal_fd);
    }
    weir_sqlite_listen_free(d->listen); /* its statements live on the writer's connection */
    conn_close(d->writer);
    conn_close(d->checkpointer); /* last: its close checkpoints with syncs */
    if (d->lock_fd >= 0) {
        close(d->lock_fd); /* releases the lock, once nothing touches the database any more */
    }
    pthread_mutex_destroy(&d->pool_lock);
    pthread_mutex_destroy(&d->ckpt_conn_lock);
    pthread_mutex_destroy(&d->ckpt_lock);
    pthread_cond_destroy(&d->ckpt_wake);
    weir_free(d->path);
    weir_free(d);
}

static char *db_path(const char *dir)
{
    weir_buf_t b = WEIR_BUF_INIT;

    weir_buf_printf(&b, "%s/weir.db", dir);
    return weir_buf_take(&b, NULL);
}

/*
 * What an earlier run wrote may still sit in the page cache only (it crashed, or ran with
 * no_sync): one fsync of the database and its WAL at open makes it durable, so that the rows
 * found in the outbox may go out at once.
 */
static int sync_at_open(sqlite_db_t *d, weir_err_t *err)
{
    const char *suffix[] = {"", "-wal"};
    int rc = 0;
    for (size_t i = 0; rc == 0 && !d->no_sync && i < 2; i++) {
        weir_buf_t b = WEIR_BUF_INIT;
        weir_buf_printf(&b, "%s%s", d->path, suffix[i]);
        int fd = open(b.data, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && fdatasync(fd) != 0) {
            rc = weir_err_set(err, WEIR_EIO, NULL, "cannot fsync %s: %s", b.data, strerror(errno));
        }
        if (fd >= 0) {
            close(fd);
        }
        weir_buf_free(&b);
    }
    return rc;
}

/* The outbox's depth at open: rows left by an earlier run wait to go out, and are durable. */
static int outbox_count(sqlite_db_t *d, weir_err_t *err)
{
    sqlite3_stmt *st = stmt_get(d->writer, ST_OUTBOX_COUNT);
    int rc = st != NULL ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc == SQLITE_ROW) {
        atomic_store(&d->outbox_depth, sqlite3_column_int64(st, 0));
        atomic_store(&d->outbox_committed, sqlite3_column_int64(st, 1));
        atomic_store(&d->outbox_durable, sqlite3_column_int64(st, 1));
    }
    if (st != NULL) {
        stmt_done(st);
    }
    if (rc != SQLITE_ROW) {
        return weir_err_set(err, log_failure(d->writer->db, "count the outbox"), NULL,
                            "cannot read the outbox");
    }
    return 0;
}

/*
 * One process per data directory: two would each run a writer (fighting over the database's
 * lock) and a source (sending every outbox row twice). SQLite's own locks only order
 * transactions, so weir holds an exclusive flock on <data_dir>/weir.lock for as long as the
 * store is open. The kernel drops it when the process dies, so a crash leaves nothing to clean.
 */
static int lock_dir(const char *dir, int *fd, weir_err_t *err)
{
    weir_buf_t b = WEIR_BUF_INIT;
    weir_buf_printf(&b, "%s/weir.lock", dir);
    *fd = open(b.data, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    int rc = 0;
    if (*fd < 0) {
        rc = weir_err_set(err, WEIR_EIO, "data_dir", "cannot open %s: %s", b.data, strerror(errno));
    } else if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        bool held = errno == EWOULDBLOCK;
        rc = weir_err_set(err, held ? WEIR_EBUSY : WEIR_EIO, "data_dir", "the data directory %s %s",
                          dir, held ? "is in use by another weir process" : strerror(errno));
        close(*fd);
        *fd = -1;
    }
    weir_buf_free(&b);
    return rc;
}

static int sq_open(const weir_store_config_t *cfg, void **out, weir_err_t *err)
{
    *out = NULL;
    int rc = make_dir(cfg->data_dir, err);
    if (rc != 0) {
        return rc;
    }
    int lock_fd = -1;
    rc = lock_dir(cfg->data_dir, &lock_fd, err);
    if (rc != 0) {
        return rc;
    }

    sqlite_db_t *d = weir_calloc(1, sizeof(*d));
    d->lock_fd = lock_fd;
    pthread_mutex_init(&d->pool_lock, NULL);
    pthread_mutex_init(&d->ckpt_conn_lock, NULL);
    pthread_mutex_init(&d->ckpt_lock, NULL);
    pthread_cond_init(&d->ckpt_wake, NULL);
    d->path = db_path(cfg->data_dir);
    d->listen = weir_sqlite_listen_new(d->path);
    d->no_sync = cfg->no_sync;
    d->outbox_max = cfg->outbox_max;
    d->wal_fd = -1;
    d->ckpt_force_at = FORCE_FRAMES;
    rc = conn_open(d->path, false, &d->writer);
    if (rc == 0) {
        rc = conn_open(d->path, false, &d->checkpointer);
    }
    if (rc != 0) {
        weir_err_set(err, rc, NULL, "cannot open the database %s", d->path);
        goto fail;
    }
    rc = configure_writer(d->writer->db, err);
    if (rc == 0) {
        rc = exec_sql(d->checkpointer->db, "PRAGMA synchronous = NORMAL", err);
    }
    if (rc == 0) {
        rc = migrate(d->writer->db, err);
    }
    if (rc == 0) {
        rc = sync_at_open(d, err);
    }
    if (rc == 0) {
        rc = outbox_count(d, err);
    }
    if (rc == 0) {
        rc = weir_sqlite_listen_open(d->listen, d->writer->db, cfg->deliveries_max, err);
    }
    sqlite3_wal_hook(d->writer->db, on_wal_commit, d);
    if (rc == 0) {
        rc = checkpointer_start(d, err);
    }
    if (rc != 0) {
        goto fail;
    }
    *out = d;
    return 0;

fail:
    sq_close(d);
    return rc;
}

static int sq_ns_load(void *db, weir_store_ns_t **out, size_t *n, weir_err_t *err)
{
    sqlite_db_t *d = db;
    sqlite3_stmt *st = stmt_get(d->writer, ST_NS_LIST);
    weir_store_ns_t *list = NULL;
    size_t count = 0;
    int rc = SQLITE_ERROR;

    while (st != NULL && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        list = weir_realloc(list, (count + 1) * sizeof(*list));
        list[count].name = weir_strdup((const char *)sqlite3_column_text(st, 0));
        list[count].created_us = sqlite3_column_int64(st, 1);
        count++;
    }
    if (st != NULL) {
        stmt_done(st);
    }
    if (rc != SQLITE_DONE) {
        weir_store_ns_free(list, count);
        return weir_err_set(err, log_failure(d->writer->db, "load namespaces"), NULL,
                            "cannot read the namespaces");
    }
    *out = list;
    *n = count;
    return 0;
}

/* ---- writing --------------------------------------------------------------------------- */

/* After a failed statement: some errors (a full disk, an I/O error) make SQLite roll the
 * whole transaction back; what follows must not run outside one, so the batch is lost. */
static int writer_failed(sqlite_db_t *d)
{
    if (sqlite3_get_autocommit(d->writer->db)) {
        d->txn_lost = true;
    }
    return WEIR_EIO;
}

static int sq_begin(void *db)
{
    sqlite_db_t *d = db;

    bool behind = d->wal_frames >= d->ckpt_force_at;
    if (atomic_exchange(&d->restart_wanted, false) || behind) {
        int frames;
        bool complete;
        checkpoint(d, &frames, &complete); /* this transaction then starts the WAL over */
        /* A reader on an old snapshot can keep the WAL from being copied whole or started
         * over: the writer tries again once it is a step longer, not before each transaction. */
        d->ckpt_force_at = frames + CHECKPOINT_STEP_FRAMES;
    }
    d->txn_lost = false;
    d->ns_known[0] = '\0';
    d->outbox_txn = 0;
    weir_sqlite_listen_txn_begin(d->listen);
    d->outbox_txn_last = 0;
    d->overflow_txn = 0;
    return exec_stmt(d->writer, ST_BEGIN);
}

static void sq_rollback(sqlite_db_t *d)
{
    if (!sqlite3_get_autocommit(d->writer->db)) {
        exec_stmt(d->writer, ST_ROLLBACK);
    }
}

/* What the transaction counted (outbox rows, deliveries) is dropped with it: only a commit adds
 * it to the totals, and the next begin starts the counts afresh. */
static void sq_abandon(void *db)
{
    sq_rollback(db);
}

static int sq_commit(void *db)
{
    sqlite_db_t *d = db;

    if (d->txn_lost || exec_stmt(d->writer, ST_COMMIT) != 0) {
        sq_rollback(d);
        return WEIR_EIO;
    }
    atomic_fetch_add(&d->outbox_depth, d->outbox_txn);
    weir_sqlite_listen_txn_commit(d->listen, d->writer->db);
    atomic_fetch_add(&d->outbox_overflow, d->overflow_txn);
    if (d->outbox_txn_last > 0) {
        atomic_store(&d->outbox_committed, d->outbox_txn_last);
    }
    return 0;
}

static int wal_fsync(sqlite_db_t *d)
{
    if (d->wal_fd < 0) {
        weir_buf_t b = WEIR_BUF_INIT;
        weir_buf_printf(&b, "%s-wal", d->path);
        d->wal_fd = open(b.data, O_RDONLY | O_CLOEXEC);
        weir_buf_free(&b);
    }
    if (d->wal_fd < 0 || fdatasync(d->wal_fd) != 0) {
        weir_error(MODULE, "cannot fsync the WAL of %s: %s", d->path, strerror(errno));
        return WEIR_EIO;
    }
    return 0;
}

static int sq_sync(void *db)
{
    sqlite_db_t *d = db;
    /* Read before the fsync: every commit up to this id was written before it. */
    int64_t committed = atomic_load(&d->outbox_committed);
    int64_t deliveries = weir_sqlite_listen_committed(d->listen);
    if (!d->no_sync && wal_fsync(d) != 0) {
        return WEIR_EIO;
    }
    atomic_store(&d->outbox_durable, committed);
    weir_sqlite_listen_durable(d->listen, deliveries);
    return 0;
}

/* 0 when the namespace exists, WEIR_ENOTFOUND when not, WEIR_EIO on failure. */
static int ns_present(conn_t *c, const char *ns)
{
    sqlite3_stmt *st = stmt_get(c, ST_NS_PRESENT);
    if (st == NULL) {
        return WEIR_EIO;
    }
    bind_text(st, 1, ns);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc == SQLITE_ROW) {
        return 0;
    }
    return rc == SQLITE_DONE ? WEIR_ENOTFOUND : log_failure(c->db, "look up namespace");
}

/* ns_present for the writer's items, remembering the last namespace found in this transaction;
 * only a namespace's deletion (sq_ns_delete) forgets it. */
static int ns_present_in_txn(sqlite_db_t *d, const char *ns)
{
    if (strcmp(d->ns_known, ns) == 0) {
        return 0;
    }
    int rc = ns_present(d->writer, ns);
    if (rc == 0 && strlen(ns) < sizeof(d->ns_known)) {
        strcpy(d->ns_known, ns);
    }
    return rc;
}

/* The seq of the event already stored under (ns, source, id). */
static int find_seq(conn_t *c, const char *ns, const char *source, const char *id, int64_t *seq)
{
    sqlite3_stmt *st = stmt_get(c, ST_FIND_SEQ);
    if (st == NULL) {
        return WEIR_EIO;
    }
    bind_text(st, 1, ns);
    bind_text(st, 2, source);
    bind_text(st, 3, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(st, 0);
    }
    stmt_done(st);
    return rc == SQLITE_ROW ? 0 : log_failure(c->db, "find stored duplicate");
}

static int insert_item(conn_t *c, int64_t received_us, weir_store_item_t *it)
{
    const char *source = weir_ce_get(it->ev, "source");
    const char *id = weir_ce_get(it->ev, "id");
    sqlite3_stmt *st = stmt_get(c, ST_INSERT);

    if (st == NULL) {
        return WEIR_EIO;
    }
    bind_text(st, 1, it->ns);
    bind_text(st, 2, source);
    bind_text(st, 3, id);
    bind_text(st, 4, weir_ce_get(it->ev, "type"));
    sqlite3_bind_int64(st, 5, received_us);
    sqlite3_bind_int(st, 6, it->born_inside ? 1 : 0);
    sqlite3_bind_text(st, 7, it->json, (int)it->json_len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        return log_failure(c->db, "insert event");
    }

    /* ON CONFLICT DO NOTHING changed no row: (ns, source, id) is stored already. */
    it->duplicate = sqlite3_changes(c->db) == 0;
    if (!it->duplicate) {
        it->seq = sqlite3_last_insert_rowid(c->db);
        return 0;
    }
    return find_seq(c, it->ns, source, id, &it->seq);
}

/* A replay inserts no row: it names the stored copy, which must still be there. */
static int find_replayed(conn_t *c, weir_store_item_t *it)
{
    sqlite3_stmt *st = stmt_get(c, ST_FIND_SEQ);
    if (st == NULL) {
        return WEIR_EIO;
    }
    bind_text(st, 1, it->ns);
    bind_text(st, 2, weir_ce_get(it->ev, "source"));
    bind_text(st, 3, weir_ce_get(it->ev, "id"));
    int rc = sqlite3_step(st);
    it->seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    stmt_done(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        return rc == SQLITE_ROW ? 0 : WEIR_ENOTFOUND;
    }
    return log_failure(c->db, "find replayed event");
}

/*
 * What goes out through the source: a new event born inside, a replay, or an event of a
 * namespace that is gone. Past the outbox's bound, an item that must go out fails its whole
 * write (an API caller was promised it goes out, and is told to retry instead); any other is
 * stored, counted and not queued.
 */
static int outbox_add(sqlite_db_t *d, const weir_store_item_t *it, int64_t now_us)
{
    bool wanted = it->outbox_only || it->replay || (it->born_inside && !it->duplicate);
    if (d->outbox_max == 0 || !wanted) {
        return 0;
    }
    int64_t depth = atomic_load(&d->outbox_depth) + d->outbox_txn + d->outbox_write;
    if (depth >= (int64_t)d->outbox_max) {
        if (it->must_go_out) {
            return WEIR_EBUSY;
        }
        d->overflow_write++;
        return 0;
    }
    sqlite3_stmt *st = stmt_get(d->writer, ST_OUTBOX_ADD);
    if (st == NULL) {
        return WEIR_EIO;
    }
    bind_text(st, 1, it->ns);
    sqlite3_bind_int64(st, 2, it->seq);
    sqlite3_bind_text(st, 3, it->json, (int)it->json_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_us);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        return log_failure(d->writer->db, "queue in the outbox");
    }
    d->outbox_write++;
    d->outbox_write_last = sqlite3_last_insert_rowid(d->writer->db);
    return 0;
}

/* The outbox rows the source has sent. */
static int outbox_remove(sqlite_db_t *d, const weir_store_write_t *w)
{
    for (size_t i = 0; i < w->noutbox_sent; i++) {
        sqlite3_stmt *st = stmt_get(d->writer, ST_OUTBOX_DELETE);
        if (st == NULL) {
            return WEIR_EIO;
        }
        sqlite3_bind_int64(st, 1, w->outbox_sent[i]);
        int rc = sqlite3_step(st);
        stmt_done(st);
        if (rc != SQLITE_DONE) {
            return log_failure(d->writer->db, "remove from the outbox");
        }
        d->outbox_write -= sqlite3_changes(d->writer->db);
    }
    return 0;
}

static int write_items(sqlite_db_t *d, weir_store_write_t *w)
{
    conn_t *c = d->writer;
    for (size_t i = 0; i < w->nitems; i++) {
        weir_store_item_t *it = &w->items[i];
        int rc = it->outbox_only ? 0 : ns_present_in_txn(d, it->ns);
        if (rc == 0 && it->replay) {
            rc = find_replayed(c, it);
        } else if (rc == 0 && !it->outbox_only) {
            rc = insert_item(c, w->received_us, it);
        }
        if (rc == 0) {
            rc = outbox_add(d, it, w->received_us);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return outbox_remove(d, w);
}

/* The deliveries and `and` state the items cause, the write's delivery outcomes, and the bound
 * on pending deliveries. */
static int write_listen(sqlite_db_t *d, weir_store_write_t *w)
{
    for (size_t i = 0; i < w->nitems; i++) {
        int rc = weir_sqlite_listen_item(d->listen, d->writer->db, &w->items[i], w->received_us);
        if (rc != 0) {
            return rc;
        }
    }
    int rc = weir_sqlite_listen_outcomes(d->listen, d->writer->db, w, w->received_us);
    return rc == 0 ? weir_sqlite_listen_bound(d->listen, d->writer->db) : rc;
}

/*
 * Whether w changes the database with one statement at most: one event, into one namespace's
 * history only, that no listener matched (most of what the sink takes). SQLite undoes a failed
 * statement by itself, so such a write needs no savepoint.
 */
static bool one_statement(const weir_store_write_t *w)
{
    if (w->nitems != 1 || w->noutcomes != 0 || w->noutbox_sent != 0) {
        return false;
    }
    const weir_store_item_t *it = &w->items[0];
    return !it->outbox_only && !it->replay && !it->born_inside && it->nmatches == 0;
}

/* Runs a write inside a savepoint, so that its failure undoes it alone. */
static int sq_write(void *db, weir_store_write_t *w)
{
    sqlite_db_t *d = db;
    conn_t *c = d->writer;
    bool savepoint = !one_statement(w);

    if (d->txn_lost || (savepoint && exec_stmt(c, ST_SAVEPOINT) != 0)) {
        return writer_failed(d);
    }
    d->outbox_write = 0;
    weir_sqlite_listen_write_begin(d->listen);
    d->outbox_write_last = 0;
    d->overflow_write = 0;
    int rc = write_items(d, w);
    if (rc == 0) {
        rc = write_listen(d, w);
    }
    if (rc == 0) {
        if (savepoint && exec_stmt(c, ST_RELEASE) != 0) {
            return writer_failed(d);
        }
        d->outbox_txn += d->outbox_write;
        weir_sqlite_listen_write_keep(d->listen);
        d->overflow_txn += d->overflow_write;
        if (d->outbox_write_last > 0) {
            d->outbox_txn_last = d->outbox_write_last;
        }
        return 0;
    }
    if (rc == WEIR_EIO) {
        writer_failed(d);
    }
    if (savepoint && !d->txn_lost &&
        (exec_stmt(c, ST_ROLLBACK_TO) != 0 || exec_stmt(c, ST_RELEASE) != 0)) {
        return writer_failed(d);
    }
    return rc;
}

static int sq_ns_create(void *db, const char *name, int64_t created_us, bool *created)
{
    sqlite_db_t *d = db;
    conn_t *c = d->writer;
    sqlite3_stmt *st = d->txn_lost ? NULL : stmt_get(c, ST_NS_INSERT);

    *created = false;
    if (st == NULL) {
        return writer_failed(d);
    }
    bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, created_us);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        log_failure(c->db, "create namespace");
        return writer_failed(d);
    }
    *created = sqlite3_changes(c->db) == 1;
    return 0;
}

/* Runs a DELETE keyed by name; *changed says whether it removed anything. */
static int delete_by_name(conn_t *c, stmt_id_t id, const char *name, bool *changed)
{
    sqlite3_stmt *st = stmt_get(c, id);
    if (st == NULL) {
        return WEIR_EIO;
    }
    bind_text(st, 1, name);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        return log_failure(c->db, stmt_sql[id]);
    }
    *changed = sqlite3_changes(c->db) > 0;
    return 0;
}

static int sq_ns_delete(void *db, const char *name)
{
    sqlite_db_t *d = db;
    conn_t *c = d->writer;
    bool changed = false;

    d->ns_known[0] = '\0';
    if (d->txn_lost || exec_stmt(c, ST_SAVEPOINT) != 0) {
        return writer_failed(d);
    }
    weir_sqlite_listen_write_begin(d->listen);
    int rc = delete_by_name(c, ST_NS_DELETE, name, &changed);
    if (rc == 0 && changed) {
        rc = weir_sqlite_listen_ns_delete(d->listen, c->db, name);
    }
    if (rc == 0 && changed) {
        bool unused;
        rc = delete_by_name(c, ST_NS_EVENTS_DELETE, name, &unused);
        if (rc == 0) {
            rc = delete_by_name(c, ST_NS_FILTERS_DELETE, name, &unused);
        }
    } else if (rc == 0) {
        rc = WEIR_ENOTFOUND;
    }
    if (rc == WEIR_EIO) {
        writer_failed(d);
    }
    if (rc != 0 && !d->txn_lost && exec_stmt(c, ST_ROLLBACK_TO) != 0) {
        return writer_failed(d);
    }
    if (!d->txn_lost && exec_stmt(c, ST_RELEASE) != 0) {
        return writer_failed(d);
    }
    if (rc == 0) {
        weir_sqlite_listen_write_keep(d->listen);
    }
    return rc;
}

static int sq_probe(void *db)
{
    sqlite_db_t *d = db;
    conn_t *c = d->writer;
    sqlite3_stmt *st = stmt_get(c, ST_PROBE);

    if (st == NULL) {
        return WEIR_EIO;
    }
    sqlite3_bind_int64(st, 1, weir_wall_us());
    int rc = sqlite3_step(st);
    stmt_done(st);
    return rc == SQLITE_DONE ? 0 : log_failure(c->db, "probe");
}

/* ---- reading --------------------------------------------------------------------------- */

static void record_fill(sqlite3_stmt *st, weir_store_record_t *r)
{
    r->seq = sqlite3_column_int64(st, 0);
    r->received_us = sqlite3_column_int64(st, 1);
    r->ns = weir_strdup((const char *)sqlite3_column_text(st, 2));
    const unsigned char *json = sqlite3_column_text(st, 3);
    r->json_len = (size_t)sqlite3_column_bytes(st, 3);
    r->json = weir_strndup((const char *)json, r->json_len);
    r->born_inside = sqlite3_column_int(st, 4) != 0;
}

/* The LIMIT of a page's query: one row more than the page takes, to learn whether any is left. */
static int64_t limit_over(size_t limit)
{
    int64_t l = limit_i64(limit);
    return l < INT64_MAX ? l + 1 : l;
}

/*
 * Steps a bound query, gathering rows into page until it is full: limit rows, or the next row's
 * JSON would take it past max_bytes (0: no bound) while it holds one already. *more says whether
 * a row was left. Resets the statement.
 */
static int collect_page(conn_t *c, sqlite3_stmt *st, const weir_store_query_t *q, size_t limit,
                        size_t max_bytes, weir_store_page_t *page, bool *more, weir_err_t *err)
{
    size_t cap = 0;
    size_t bytes = 0;
    int rc;

    *more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(st, 3);
        if (q != NULL && q->match != NULL &&
            !q->match((const char *)sqlite3_column_text(st, 3), len, q->match_arg)) {
            continue;
        }
        if (page->n == limit || (max_bytes > 0 && page->n > 0 && bytes + len > max_bytes)) {
            *more = true;
            break;
        }
        if (page->n == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            page->recs = weir_realloc(page->recs, cap * sizeof(*page->recs));
        }
        record_fill(st, &page->recs[page->n++]);
        bytes += len;
    }
    stmt_done(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        weir_store_records_free(page->recs, page->n);
        page->recs = NULL;
        page->n = 0;
        return weir_err_set(err, log_failure(c->db, "read events"), NULL,
                            "storage failed; see the server log");
    }
    return 0;
}

/* Steps a bound query to its end, gathering its rows; resets the statement. */
static int collect(conn_t *c, sqlite3_stmt *st, weir_store_record_t **out, size_t *n,
                   weir_err_t *err)
{
    weir_store_page_t page = {0};
    bool more;

    int rc = collect_page(c, st, NULL, SIZE_MAX, 0, &page, &more, err);
    *out = page.recs;
    *n = page.n;
    return rc;
}

/* The seq of ns's event that has skip newer ones below below_seq, or 0 when there is none. */
static int nth_newest(conn_t *c, const char *ns, int64_t below_seq, int64_t skip, int64_t *seq)
{
    sqlite3_stmt *st = stmt_get(c, ST_NTH_NEWEST);

    *seq = 0;
    if (st == NULL) {
        return WEIR_EIO;
    }
    bind_text(st, 1, ns);
    sqlite3_bind_int64(st, 2, below_seq);
    sqlite3_bind_int64(st, 3, skip);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(st, 0);
    }
    stmt_done(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : log_failure(c->db, "find a seq");
}

/* Takes a reader and its prepared statement; WEIR_EIO when either cannot be had. */
static int reader_stmt(sqlite_db_t *d, stmt_id_t id, conn_t **c, sqlite3_stmt **st, weir_err_t *err)
{
    *c = reader_take(d);
    *st = *c != NULL ? stmt_get(*c, id) : NULL;
    if (*st == NULL) {
        if (*c != NULL) {
            reader_give(d, *c);
        }
        return weir_err_set(err, WEIR_EIO, NULL, "storage failed; see the server log");
    }
    return 0;
}

static bool filtered(const weir_store_query_t *q)
{
    return q->type != NULL || q->source != NULL || q->text != NULL || q->from_us != INT64_MIN ||
           q->until_us != INT64_MAX || q->match != NULL;
}

/*
 * Where a filtered page stops examining events: the newest event below before_seq that is not
 * among the max_scan it may examine (0: it may go down to the oldest). An unfiltered page
 * examines only the events it returns. No transaction joins this read to the page's: below
 * before_seq (the durable horizon at most) events can only go, never come.
 */
static int scan_floor(conn_t *c, const weir_store_query_t *q, int64_t *floor)
{
    *floor = 0;
    if (q->max_scan == 0 || !filtered(q)) {
        return 0;
    }
    return nth_newest(c, q->ns, q->before_seq, limit_i64(q->max_scan), floor);
}

static void bind_query(sqlite3_stmt *st, const weir_store_query_t *q, int64_t floor)
{
    bind_text(st, 1, q->ns);
    sqlite3_bind_int64(st, 2, q->before_seq);
    sqlite3_bind_int64(st, 3, q->from_us);
    sqlite3_bind_int64(st, 4, q->until_us);
    bind_text(st, 5, q->type);
    bind_text(st, 6, q->source);
    bind_text(st, 7, q->text);
    /* A match drops rows after SQL: SQL's limit cannot count them, the scan floor bounds it. */
    sqlite3_bind_int64(st, 8, q->match != NULL ? -1 : limit_over(q->limit));
    sqlite3_bind_int64(st, 9, floor);
}

static int sq_history(void *db, const weir_store_query_t *q, weir_store_page_t *out,
                      weir_err_t *err)
{
    sqlite_db_t *d = db;
    conn_t *c;
    sqlite3_stmt *st;
    int64_t floor = 0;
    bool more = false;

    int rc = reader_stmt(d, ST_HISTORY, &c, &st, err);
    if (rc != 0) {
        return rc;
    }
    if (scan_floor(c, q, &floor) != 0) {
        reader_give(d, c);
        return weir_err_set(err, WEIR_EIO, NULL, "storage failed; see the server log");
    }
    bind_query(st, q, floor);
    rc = collect_page(c, st, q, q->limit, q->max_bytes, out, &more, err);
    reader_give(d, c);
    if (rc == 0 && more) {
        out->next = out->recs[out->n - 1].seq;
    } else if (rc == 0 && floor > 0) {
        out->next = floor + 1; /* the scan stopped above floor: go on from it */
    }
    return rc;
}

/* The newest seq retention has removed from ns (0 when none, or ns is gone). */
static int trimmed_get(conn_t *c, const char *ns, int64_t *seq)
{
    sqlite3_stmt *st = stmt_get(c, ST_TRIMMED_GET);

    *seq = 0;
    if (st == NULL) {
        return WEIR_EIO;
    }
    bind_text(st, 1, ns);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(st, 0);
    }
    stmt_done(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : log_failure(c->db, "read trimmed_seq");
}

/* Ends a reader's transaction, so that its snapshot does not outlive the read. */
static void read_end(conn_t *c)
{
    if (!sqlite3_get_autocommit(c->db) && exec_stmt(c, ST_COMMIT) != 0) {
        exec_stmt(c, ST_ROLLBACK);
    }
}

/* The events and what retention removed are read in one snapshot, so that a page never has
 * events that its trimmed_seq says are gone, nor misses a removal that shaped it. */
static int sq_since(void *db, const char *ns, int64_t after_seq, int64_t through_seq, size_t limit,
                    size_t max_bytes, weir_store_page_t *out, weir_err_t *err)
{
    sqlite_db_t *d = db;
    conn_t *c;
    sqlite3_stmt *st;
    bool more = false;

    int rc = reader_stmt(d, ST_SINCE, &c, &st, err);
    if (rc != 0) {
        return rc;
    }
    if (exec_stmt(c, ST_READ_BEGIN) != 0) {
        reader_give(d, c);
        return weir_err_set(err, WEIR_EIO, NULL, "storage failed; see the server log");
    }
    bind_text(st, 1, ns);
    sqlite3_bind_int64(st, 2, after_seq);
    sqlite3_bind_int64(st, 3, limit_over(limit));
    sqlite3_bind_int64(st, 4, through_seq);
    rc = collect_page(c, st, NULL, limit, max_bytes, out, &more, err);
    if (rc == 0 && trimmed_get(c, ns, &out->trimmed) != 0) {
        weir_store_page_free(out);
        rc = weir_err_set(err, WEIR_EIO, NULL, "storage failed; see the server log");
    }
    read_end(c);
    reader_give(d, c);
    if (rc == 0) {
        out->next =
            more ? out->recs[out->n - 1].seq : (through_seq > after_seq ? through_seq : after_seq);
    }
    return rc;
}

static int sq_get(void *db, const char *ns, const char *id, const char *source, int64_t through_seq,
                  weir_store_record_t *out, weir_err_t *err)
{
    sqlite_db_t *d = db;
    conn_t *c;
    sqlite3_stmt *st;
    weir_store_record_t *recs = NULL;
    size_t n = 0;

    int rc = reader_stmt(d, ST_GET, &c, &st, err);
    if (rc != 0) {
        return rc;
    }
    bind_text(st, 1, ns);
    bind_text(st, 2, id);
    bind_text(st, 3, source);
    sqlite3_bind_int64(st, 4, through_seq);
    rc = collect(c, st, &recs, &n, err);
    reader_give(d, c);
    if (rc == 0 && n == 0) {
        rc = weir_err_set(err, WEIR_ENOTFOUND, "id", "no such event");
    } else if (rc == 0) {
        *out = recs[0];
        weir_free(recs);
    }
    return rc;
}

static int sq_count(void *db, const char *ns, int64_t *count, weir_err_t *err)
{
    sqlite_db_t *d = db;
    conn_t *c;
    sqlite3_stmt *st;

    int rc = reader_stmt(d, ns != NULL ? ST_COUNT_NS : ST_COUNT_ALL, &c, &st, err);
    if (rc != 0) {
        return rc;
    }
    if (ns != NULL) {
        bind_text(st, 1, ns);
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 0);
    }
    stmt_done(st);
    if (rc != SQLITE_ROW) {
        rc = weir_err_set(err, log_failure(c->db, "count events"), NULL,
                          "storage failed; see the server log");
    } else {
        rc = 0;
    }
    reader_give(d, c);
    return rc;
}

/* ---- live streams and retention ------------------------------------------------------- */

/* Runs at open, before the writer thread starts, so the writer's connection is free. */
static int sq_last_seq(void *db, int64_t *seq, weir_err_t *err)
{
    sqlite_db_t *d = db;
    sqlite3_stmt *st = stmt_get(d->writer, ST_LAST_SEQ);

    int rc = st != NULL ? sqlite3_step(st) : SQLITE_ERROR;
    *seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (st != NULL) {
        stmt_done(st);
    }
    if (rc != SQLITE_ROW) {
        return weir_err_set(err, log_failure(d->writer->db, "read the last seq"), NULL,
                            "cannot read the database");
    }
    return 0;
}

static int sq_retention_get(void *db, const char *ns, weir_store_retention_t *out, weir_err_t *err)
{
    sqlite_db_t *d = db;
    conn_t *c;
    sqlite3_stmt *st;

    int rc = reader_stmt(d, ST_RETENTION_GET, &c, &st, err);
    if (rc != 0) {
        return rc;
    }
    bind_text(st, 1, ns);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->max_age_us = sqlite3_column_int64(st, 0);
        out->max_count = sqlite3_column_int64(st, 1);
    }
    stmt_done(st);
    if (rc == SQLITE_ROW) {
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = weir_err_set(err, WEIR_ENOTFOUND, "namespace", "namespace does not exist");
    } else {
        rc = weir_err_set(err, log_failure(c->db, "read retention"), NULL,
                          "storage failed; see the server log");
    }
    reader_give(d, c);
    return rc;
}

static void bind_unset_null(sqlite3_stmt *st, int i, int64_t v)
{
    if (v < 0) {
        sqlite3_bind_null(st, i);
    } else {
        sqlite3_bind_int64(st, i, v);
    }
}

static int sq_retention_set(void *db, const char *ns, const weir_store_retention_t *r)
{
    sqlite_db_t *d = db;
    conn_t *c = d->writer;
    sqlite3_stmt *st = d->txn_lost ? NULL : stmt_get(c, ST_RETENTION_SET);

    if (st == NULL) {
        return writer_failed(d);
    }
    bind_text(st, 1, ns);
    bind_unset_null(st, 2, r->max_age_us);
    bind_unset_null(st, 3, r->max_count);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        log_failure(c->db, "set retention");
        return writer_failed(d);
    }
    return sqlite3_changes(c->db) == 1 ? 0 : WEIR_ENOTFOUND;
}

/* Runs one bounded DELETE of the trim statements; adds what it removed to *deleted and raises
 * *newest to the newest seq it removed. */
static int trim_step(sqlite_db_t *d, stmt_id_t id, const char *ns, int64_t bound, size_t rows,
                     size_t *deleted, int64_t *newest)
{
    conn_t *c = d->writer;
    sqlite3_stmt *st = d->txn_lost ? NULL : stmt_get(c, id);
    int rc;

    if (st == NULL) {
        return writer_failed(d);
    }
    bind_text(st, 1, ns);
    sqlite3_bind_int64(st, 2, bound);
    sqlite3_bind_int64(st, 3, limit_i64(rows));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        *newest = seq > *newest ? seq : *newest;
        (*deleted)++;
    }
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        log_failure(c->db, "apply retention");
        return writer_failed(d);
    }
    return 0;
}

/* Raises the namespace's trimmed_seq to seq. */
static int trimmed_set(sqlite_db_t *d, const char *ns, int64_t seq)
{
    sqlite3_stmt *st = d->txn_lost ? NULL : stmt_get(d->writer, ST_TRIMMED_SET);

    if (st == NULL) {
        return writer_failed(d);
    }
    bind_text(st, 1, ns);
    sqlite3_bind_int64(st, 2, seq);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        log_failure(d->writer->db, "note what retention removed");
        return writer_failed(d);
    }
    return 0;
}

static int sq_trim_cut(void *db, const char *ns, int64_t keep, int64_t *through_seq,
                       weir_err_t *err)
{
    sqlite_db_t *d = db;
    conn_t *c = reader_take(d);

    *through_seq = 0;
    if (c == NULL || nth_newest(c, ns, INT64_MAX, keep, through_seq) != 0) {
        if (c != NULL) {
            reader_give(d, c);
        }
        return weir_err_set(err, WEIR_EIO, NULL, "storage failed; see the server log");
    }
    reader_give(d, c);
    return 0;
}

static int sq_trim(void *db, const char *ns, int64_t before_us, int64_t through_seq,
                   size_t max_rows, size_t *deleted)
{
    sqlite_db_t *d = db;
    int rc = 0;

    int64_t newest = 0;

    *deleted = 0;
    if (before_us != INT64_MIN) {
        rc = trim_step(d, ST_TRIM_AGE, ns, before_us, max_rows, deleted, &newest);
    }
    if (rc == 0 && through_seq > 0 && *deleted < max_rows) {
        rc = trim_step(d, ST_TRIM_COUNT, ns, through_seq, max_rows - *deleted, deleted, &newest);
    }
    if (rc == 0 && newest > 0) {
        rc = trimmed_set(d, ns, newest);
    }
    return rc;
}

/* ---- filters --------------------------------------------------------------------------- */

static bool filter_exists(conn_t *c, const char *ns, const char *name)
{
    sqlite3_stmt *st = stmt_get(c, ST_FILTER_FIND);
    if (st == NULL) {
        return false;
    }
    bind_text(st, 1, ns);
    bind_text(st, 2, name);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    stmt_done(st);
    return found;
}

static int sq_filter_put(void *db, const char *ns, const char *name, const char *src, size_t len,
                         int64_t updated_us, bool *created)
{
    sqlite_db_t *d = db;
    conn_t *c = d->writer;
    int rc = ns_present(c, ns);
    if (rc != 0) {
        return rc == WEIR_EIO ? writer_failed(d) : rc;
    }
    *created = !filter_exists(c, ns, name);

    sqlite3_stmt *st = stmt_get(c, ST_FILTER_PUT);
    if (st == NULL) {
        return writer_failed(d);
    }
    bind_text(st, 1, ns);
    bind_text(st, 2, name);
    sqlite3_bind_text(st, 3, src, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, updated_us);
    rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        log_failure(c->db, "save filter");
        return writer_failed(d);
    }
    return 0;
}

static int sq_filter_delete(void *db, const char *ns, const char *name)
{
    sqlite_db_t *d = db;
    sqlite3_stmt *st = stmt_get(d->writer, ST_FILTER_DELETE);
    if (st == NULL) {
        return writer_failed(d);
    }
    bind_text(st, 1, ns);
    bind_text(st, 2, name);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        log_failure(d->writer->db, "delete filter");
        return writer_failed(d);
    }
    return sqlite3_changes(d->writer->db) > 0 ? 0 : WEIR_ENOTFOUND;
}

static int sq_filter_find(void *db, const char *ns, const char *name, bool *exists, weir_err_t *err)
{
    conn_t *c;
    sqlite3_stmt *st;
    int rc = reader_stmt(db, ST_FILTER_FIND, &c, &st, err);
    if (rc != 0) {
        return rc;
    }
    bind_text(st, 1, ns);
    bind_text(st, 2, name);
    rc = sqlite3_step(st);
    *exists = rc == SQLITE_ROW;
    bool failed = rc != SQLITE_ROW && rc != SQLITE_DONE;
    if (failed) {
        log_failure(c->db, "find filter");
    }
    stmt_done(st);
    reader_give(db, c);
    return failed ? weir_err_set(err, WEIR_EIO, NULL, "storage failed; see the server log") : 0;
}

static void filter_fill(sqlite3_stmt *st, weir_store_filter_t *f)
{
    f->ns = weir_strdup((const char *)sqlite3_column_text(st, 0));
    f->name = weir_strdup((const char *)sqlite3_column_text(st, 1));
    f->source_len = (size_t)sqlite3_column_bytes(st, 2);
    f->source = weir_memdup(sqlite3_column_text(st, 2), f->source_len + 1);
    f->updated_us = sqlite3_column_int64(st, 3);
}

static int sq_filter_list(void *db, const char *ns, weir_store_filter_t **out, size_t *n,
                          weir_err_t *err)
{
    conn_t *c;
    sqlite3_stmt *st;
    int rc = reader_stmt(db, ST_FILTER_LIST, &c, &st, err);
    if (rc != 0) {
        return rc;
    }
    bind_text(st, 1, ns);
    weir_store_filter_t *list = NULL;
    size_t count = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        list = weir_realloc(list, (count + 1) * sizeof(*list));
        filter_fill(st, &list[count++]);
    }
    stmt_done(st);
    reader_give(db, c);
    if (rc != SQLITE_DONE) {
        weir_store_filters_free(list, count);
        return weir_err_set(err, WEIR_EIO, NULL, "storage failed; see the server log");
    }
    *out = list;
    *n = count;
    return 0;
}

static int sq_outbox_next(void *db, int64_t after_id, size_t limit, weir_store_outbox_row_t **out,
                          size_t *n, weir_err_t *err)
{
    sqlite_db_t *d = db;
    conn_t *c;
    sqlite3_stmt *st;
    int rc = reader_stmt(d, ST_OUTBOX_NEXT, &c, &st, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int64(st, 2, limit_i64(limit));
    sqlite3_bind_int64(st, 3, atomic_load(&d->outbox_durable));
    weir_store_outbox_row_t *list = NULL;
    size_t count = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        list = weir_realloc(list, (count + 1) * sizeof(*list));
        weir_store_outbox_row_t *r = &list[count++];
        r->id = sqlite3_column_int64(st, 0);
        r->ns = weir_strdup((const char *)sqlite3_column_text(st, 1));
        r->seq = sqlite3_column_int64(st, 2);
        r->json_len = (size_t)sqlite3_column_bytes(st, 3);
        r->json = weir_memdup(sqlite3_column_text(st, 3), r->json_len + 1);
        r->created_us = sqlite3_column_int64(st, 4);
    }
    stmt_done(st);
    reader_give(d, c);
    if (rc != SQLITE_DONE) {
        weir_store_outbox_free(list, count);
        return weir_err_set(err, WEIR_EIO, NULL, "storage failed; see the server log");
    }
    *out = list;
    *n = count;
    return 0;
}

static void sq_deliveries_stats(void *db, int64_t *pending, uint64_t *dropped)
{
    sqlite_db_t *d = db;
    weir_sqlite_listen_stats(d->listen, pending, dropped);
}

static void sq_newest(void *db, int64_t *delivery, int64_t *outbox)
{
    sqlite_db_t *d = db;
    *delivery = weir_sqlite_listen_newest(d->listen);
    *outbox = atomic_load(&d->outbox_durable);
}

static void sq_outbox_stats(void *db, int64_t *depth, uint64_t *overflowed)
{
    sqlite_db_t *d = db;
    *depth = atomic_load(&d->outbox_depth);
    *overflowed = atomic_load(&d->outbox_overflow);
}

const weir_store_backend_t weir_store_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .ns_load = sq_ns_load,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_abandon,
    .sync = sq_sync,
    .write = sq_write,
    .ns_create = sq_ns_create,
    .ns_delete = sq_ns_delete,
    .filter_put = sq_filter_put,
    .filter_delete = sq_filter_delete,
    .filter_list = sq_filter_list,
    .filter_exists = sq_filter_find,
    .probe = sq_probe,
    .history = sq_history,
    .since = sq_since,
    .get = sq_get,
    .count = sq_count,
    .last_seq = sq_last_seq,
    .retention_get = sq_retention_get,
    .retention_set = sq_retention_set,
    .trim_cut = sq_trim_cut,
    .trim = sq_trim,
    .listener_put = weir_sqlite_listener_put,
    .listener_delete = weir_sqlite_listener_delete,
    .listeners = weir_sqlite_listeners,
    .listener_get = weir_sqlite_listener_get,
    .collected = weir_sqlite_collected,
    .deliveries_due = weir_sqlite_deliveries_due,
    .deliveries_new = weir_sqlite_deliveries_new,
    .deliveries_pending = weir_sqlite_deliveries_pending,
    .outbox_next = sq_outbox_next,
    .outbox_stats = sq_outbox_stats,
    .deliveries_stats = sq_deliveries_stats,
    .newest = sq_newest,
};
