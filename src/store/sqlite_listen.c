/*
 * sqlite_listen.c: listeners, `and` state and pending deliveries in the SQLite backend. The
 * writer side runs inside the writer's transaction (sqlite.c calls it from its write); the
 * read side keeps one read-only connection of its own, so that the delivery engine's scans
 * never take a connection from the history readers.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "store/sqlite_listen.h"

#define MODULE          "store"
#define BUSY_TIMEOUT_MS 5000

typedef enum wstmt {
    W_DELIVER,
    W_EXPIRE,
    W_COLLECT,
    W_COUNT,
    W_FIRE,
    W_CLEAR,
    W_TALLY,
    W_DELETE,
    W_RETRY,
    W_DEAD,
    W_NS_PRESENT,
    W_PUT,
    W_UNLISTEN,
    W_UNCOLLECT,
    W_UNDELIVER,
    W_NS_UNCOLLECT,
    W_NS_UNDELIVER,
    W_NS_UNLISTEN,
    W_PENDING,
    W_LAST_ID,
    W_MOST,
    W_DROP,
    W_DROP_TALLY,
    W_MAX
} wstmt_t;

#define LIVE_LISTENER "EXISTS (SELECT 1 FROM listeners WHERE id = ?1)"

static const char *const wsql[W_MAX] = {
    [W_DELIVER] = "INSERT INTO deliveries (listener, ns, seq, due_us, created_us)"
                  " SELECT ?1, ?2, ?3, ?4, ?4 WHERE " LIVE_LISTENER,
    [W_EXPIRE] = "DELETE FROM listener_collect WHERE listener = ?1 AND received_us < ?2",
    [W_COLLECT] = "INSERT INTO listener_collect (listener, key, type, received_us, seq)"
                  " SELECT ?1, ?2, ?3, ?4, ?5 WHERE " LIVE_LISTENER
                  " ON CONFLICT (listener, key, type) DO UPDATE"
                  " SET received_us = excluded.received_us, seq = excluded.seq",
    [W_COUNT] = "SELECT count(*) FROM listener_collect WHERE listener = ?1 AND key = ?2",
    /* A complete set becomes one delivery whose payload is {type: event, ...}. */
    [W_FIRE] = "INSERT INTO deliveries (listener, ns, seq, payload, due_us, created_us)"
               " SELECT ?1, ?3, 0, json_group_object(c.type, json(e.event)), ?4, ?4"
               " FROM listener_collect c JOIN events e ON e.seq = c.seq"
               " WHERE c.listener = ?1 AND c.key = ?2",
    [W_CLEAR] = "DELETE FROM listener_collect WHERE listener = ?1 AND key = ?2",
    [W_TALLY] = "UPDATE listeners SET delivered = delivered + ?2, failed = failed + ?3,"
                " dead_lettered = dead_lettered + ?4"
                " WHERE id = (SELECT listener FROM deliveries WHERE id = ?1)",
    [W_DELETE] = "DELETE FROM deliveries WHERE id = ?1",
    [W_RETRY] = "UPDATE deliveries SET attempts = ?2, due_us = ?3, last_status = ?4,"
                " last_error = ?5 WHERE id = ?1",
    /* The target's failure is kept in error_* for knativeerrorcode and knativeerrordata. */
    [W_DEAD] = "UPDATE deliveries SET dead_letter = 1, attempts = 0, due_us = ?3,"
               " last_status = ?4, last_error = ?5, error_status = ?4, error_data = ?5"
               " WHERE id = ?1",
    [W_NS_PRESENT] = "SELECT 1 FROM namespaces WHERE name = ?1",
    [W_PUT] = "INSERT INTO listeners (id, ns, created_us, spec) VALUES (?1, ?2, ?3, ?4)"
              " ON CONFLICT (id) DO NOTHING",
    [W_UNLISTEN] = "DELETE FROM listeners WHERE id = ?1 AND ns = ?2",
    [W_UNCOLLECT] = "DELETE FROM listener_collect WHERE listener = ?1",
    [W_UNDELIVER] = "DELETE FROM deliveries WHERE listener = ?1",
    [W_NS_UNCOLLECT] = "DELETE FROM listener_collect"
                       " WHERE listener IN (SELECT id FROM listeners WHERE ns = ?1)",
    [W_NS_UNDELIVER] = "DELETE FROM deliveries WHERE ns = ?1",
    [W_NS_UNLISTEN] = "DELETE FROM listeners WHERE ns = ?1",
    [W_PENDING] = "SELECT count(*), coalesce(max(id), 0) FROM deliveries",
    [W_LAST_ID] = "SELECT coalesce(max(id), 0) FROM deliveries",
    /* The listener with the most pending deliveries (a pass over an index: only past the
     * bound, and then once per DROP_SLACK of the bound). */
    [W_MOST] = "SELECT listener, ns, count(*) AS n FROM deliveries GROUP BY listener"
               " ORDER BY n DESC LIMIT 1",
    /* Its oldest; +listener walks the ids from the oldest rather than sorting its rows. */
    [W_DROP] = "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
               " WHERE +listener = ?1 ORDER BY id LIMIT ?2)",
    [W_DROP_TALLY] = "UPDATE listeners SET failed = failed + ?2 WHERE id = ?1",
};

typedef enum rstmt {
    R_LIST,
    R_GET,
    R_COLLECTED,
    R_DUE,
    R_DUE_OF,
    R_NEW,
    R_COUNT,
    R_NEXT,
    R_MAX
} rstmt_t;

#define LISTENER_COLUMNS "id, ns, spec, created_us, delivered, failed, dead_lettered"
#define DELIVERY_COLUMNS                                                                           \
    "d.id, d.listener, d.ns, d.seq, coalesce(d.payload, e.event), d.payload IS NOT NULL,"          \
    " d.attempts, d.dead_letter, d.due_us, d.created_us, d.last_status, d.last_error,"             \
    " coalesce(d.error_status, d.last_status),"                                                    \
    " CASE WHEN d.error_status IS NULL THEN d.last_error ELSE d.error_data END"                    \
    " FROM deliveries d LEFT JOIN events e ON d.payload IS NULL AND e.seq = d.seq"

static const char *const rsql[R_MAX] = {
    [R_LIST] = "SELECT " LISTENER_COLUMNS " FROM listeners"
               " WHERE (?1 IS NULL OR ns = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
    [R_GET] = "SELECT " LISTENER_COLUMNS ","
              " (SELECT count(*) FROM deliveries WHERE listener = ?2)"
              " FROM listeners WHERE ns = ?1 AND id = ?2",
    [R_COLLECTED] = "SELECT c.key, c.type, c.received_us, json_extract(e.event, '$.id')"
                    " FROM listener_collect c LEFT JOIN events e ON e.seq = c.seq"
                    " WHERE c.listener = ?1 ORDER BY c.key, c.type",
    [R_DUE] = "SELECT " DELIVERY_COLUMNS " WHERE d.due_us <= ?1 AND d.id <= ?6"
              " AND (d.due_us > ?2 OR (d.due_us = ?2 AND d.id > ?3))"
              " ORDER BY d.due_us, d.id LIMIT ?4",
    [R_DUE_OF] = "SELECT " DELIVERY_COLUMNS " WHERE d.listener = ?5 AND d.due_us <= ?1"
                 " AND d.id <= ?6"
                 " AND (d.due_us > ?2 OR (d.due_us = ?2 AND d.id > ?3))"
                 " ORDER BY d.due_us, d.id LIMIT ?4",
    [R_NEW] = "SELECT " DELIVERY_COLUMNS " WHERE d.id > ?1 AND d.id <= ?3 ORDER BY d.id LIMIT ?2",
    [R_COUNT] = "SELECT count(*) FROM deliveries",
    [R_NEXT] = "SELECT min(due_us) FROM deliveries WHERE due_us > ?1",
};

/* Past the bound, deliveries are given up down to this fraction of it below the bound, so that
 * the search for the listener with the most runs once per so many new deliveries. */
#define DROP_SLACK 100

struct weir_sqlite_listen {
    char *path;
    sqlite3_stmt *w[W_MAX]; /* on the writer's connection; writer thread only */
    /* Pending deliveries: the committed count, and what the writer's open transaction and its
     * current write changed of it (applied once they commit), as sqlite.c does for the outbox. */
    size_t pending_max; /* 0: no bound */
    atomic_int_fast64_t pending;
    int64_t pending_txn;
    int64_t pending_write;
    atomic_uint_fast64_t dropped;
    uint64_t dropped_txn;
    uint64_t dropped_write;
    /* The newest delivery id committed, and the newest made durable by an fsync: the engine
     * reads only durable deliveries, so that nothing goes out that a power loss could undo. */
    bool created_txn;
    bool created_write;
    atomic_int_fast64_t committed_id;
    atomic_int_fast64_t durable_id;
    pthread_mutex_t lock; /* guards the reader */
    sqlite3 *reader;
    sqlite3_stmt *r[R_MAX];
};

static int failed(sqlite3 *db, const char *what)
{
    weir_error(MODULE, "sqlite: %s: %s", what, sqlite3_errmsg(db));
    return WEIR_EIO;
}

static sqlite3_stmt *prepare(sqlite3 *db, sqlite3_stmt **slot, const char *sql)
{
    if (*slot == NULL &&
        sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) != SQLITE_OK) {
        failed(db, sql);
        return NULL;
    }
    return *slot;
}

static sqlite3_stmt *wget(weir_sqlite_listen_t *l, sqlite3 *db, wstmt_t id)
{
    return prepare(db, &l->w[id], wsql[id]);
}

static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void text(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL) {
        sqlite3_bind_null(st, i);
    } else {
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    }
}

/* Steps a bound statement that returns no rows; *changes (when not NULL) gets its count. */
static int run(sqlite3 *db, sqlite3_stmt *st, const char *what, int *changes)
{
    if (st == NULL) {
        return WEIR_EIO;
    }
    int rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE) {
        return failed(db, what);
    }
    if (changes != NULL) {
        *changes = sqlite3_changes(db);
    }
    return 0;
}

weir_sqlite_listen_t *weir_sqlite_listen_new(const char *path)
{
    weir_sqlite_listen_t *l = weir_calloc(1, sizeof(*l));
    l->path = weir_strdup(path);
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

void weir_sqlite_listen_free(weir_sqlite_listen_t *l)
{
    if (l == NULL) {
        return;
    }
    for (int i = 0; i < W_MAX; i++) {
        sqlite3_finalize(l->w[i]);
    }
    for (int i = 0; i < R_MAX; i++) {
        sqlite3_finalize(l->r[i]);
    }
    sqlite3_close(l->reader);
    pthread_mutex_destroy(&l->lock);
    weir_free(l->path);
    weir_free(l);
}

/* ---- writer: matches ------------------------------------------------------------------- */

static int deliver(weir_sqlite_listen_t *l, sqlite3 *db, const weir_store_item_t *it,
                   const weir_store_match_t *m, int64_t now_us)
{
    int added = 0;
    sqlite3_stmt *st = wget(l, db, W_DELIVER);
    if (st != NULL) {
        text(st, 1, m->listener);
        text(st, 2, it->ns);
        sqlite3_bind_int64(st, 3, it->seq);
        sqlite3_bind_int64(st, 4, now_us);
    }
    int rc = run(db, st, "create delivery", &added);
    l->pending_write += added;
    l->created_write = l->created_write || added > 0;
    return rc;
}

/* Runs a statement bound to (listener, key[, ns, now]) that returns no rows. */
static int keyed(weir_sqlite_listen_t *l, sqlite3 *db, wstmt_t id, const weir_store_match_t *m,
                 const char *ns, int64_t now_us)
{
    int changes = 0;
    sqlite3_stmt *st = wget(l, db, id);
    if (st != NULL) {
        text(st, 1, m->listener);
        text(st, 2, m->key);
        if (id == W_FIRE) {
            text(st, 3, ns);
            sqlite3_bind_int64(st, 4, now_us);
        }
    }
    int rc = run(db, st, wsql[id], &changes);
    l->pending_write += id == W_FIRE ? changes : 0;
    l->created_write = l->created_write || (id == W_FIRE && changes > 0);
    return rc;
}

static int count_set(weir_sqlite_listen_t *l, sqlite3 *db, const weir_store_match_t *m,
                     int64_t *count)
{
    sqlite3_stmt *st = wget(l, db, W_COUNT);
    if (st == NULL) {
        return WEIR_EIO;
    }
    text(st, 1, m->listener);
    text(st, 2, m->key);
    int rc = sqlite3_step(st);
    *count = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    done(st);
    return rc == SQLITE_ROW ? 0 : failed(db, "count an and set");
}

static int add_member(weir_sqlite_listen_t *l, sqlite3 *db, const weir_store_item_t *it,
                      const weir_store_match_t *m, int64_t now_us)
{
    sqlite3_stmt *st = wget(l, db, W_EXPIRE);
    if (st != NULL) {
        text(st, 1, m->listener);
        sqlite3_bind_int64(st, 2, now_us - m->lifespan_us);
    }
    int rc = run(db, st, "expire an and set", NULL);
    st = rc == 0 ? wget(l, db, W_COLLECT) : NULL;
    if (rc != 0 || st == NULL) {
        return WEIR_EIO;
    }
    text(st, 1, m->listener);
    text(st, 2, m->key);
    text(st, 3, m->type);
    sqlite3_bind_int64(st, 4, now_us);
    sqlite3_bind_int64(st, 5, it->seq);
    return run(db, st, "collect into an and set", NULL);
}

/* Adds the event to its set; a set that is now complete becomes a delivery and starts over. */
static int collect(weir_sqlite_listen_t *l, sqlite3 *db, const weir_store_item_t *it,
                   const weir_store_match_t *m, int64_t now_us)
{
    int64_t count = 0;

    int rc = add_member(l, db, it, m, now_us);
    if (rc == 0) {
        rc = count_set(l, db, m, &count);
    }
    if (rc != 0 || count < (int64_t)m->ntypes) {
        return rc;
    }
    rc = keyed(l, db, W_FIRE, m, it->ns, now_us);
    return rc == 0 ? keyed(l, db, W_CLEAR, m, it->ns, now_us) : rc;
}

int weir_sqlite_listen_item(weir_sqlite_listen_t *l, sqlite3 *db, const weir_store_item_t *it,
                            int64_t now_us)
{
    if (it->duplicate && !it->replay) {
        return 0; /* its deliveries were made when it was first stored */
    }
    for (size_t i = 0; i < it->nmatches; i++) {
        const weir_store_match_t *m = &it->matches[i];
        int rc = m->kind == WEIR_STORE_MATCH_COLLECT ? collect(l, db, it, m, now_us)
                                                     : deliver(l, db, it, m, now_us);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- writer: outcomes ------------------------------------------------------------------ */

static int finish(weir_sqlite_listen_t *l, sqlite3 *db, const weir_store_outcome_t *o)
{
    bool delivered = o->kind == WEIR_STORE_DELIVERED;
    sqlite3_stmt *st = wget(l, db, W_TALLY);
    if (st != NULL) {
        sqlite3_bind_int64(st, 1, o->delivery);
        sqlite3_bind_int(st, 2, delivered && !o->dead_letter);
        sqlite3_bind_int(st, 3, o->kind == WEIR_STORE_FAILED);
        sqlite3_bind_int(st, 4, delivered && o->dead_letter);
    }
    int rc = run(db, st, "count a finished delivery", NULL);
    st = rc == 0 ? wget(l, db, W_DELETE) : NULL;
    if (st != NULL) {
        sqlite3_bind_int64(st, 1, o->delivery);
    }
    int removed = 0;
    rc = rc == 0 ? run(db, st, "remove a finished delivery", &removed) : rc;
    l->pending_write -= removed;
    return rc;
}

static int reschedule(weir_sqlite_listen_t *l, sqlite3 *db, const weir_store_outcome_t *o,
                      int64_t now_us)
{
    bool dead = o->kind == WEIR_STORE_DEAD_LETTER;
    sqlite3_stmt *st = wget(l, db, dead ? W_DEAD : W_RETRY);
    if (st != NULL) {
        sqlite3_bind_int64(st, 1, o->delivery);
        sqlite3_bind_int(st, 2, (int)o->attempts);
        sqlite3_bind_int64(st, 3, dead ? now_us : o->due_us);
        sqlite3_bind_int(st, 4, o->last_status);
        text(st, 5, o->last_error);
    }
    return run(db, st, "reschedule a delivery", NULL);
}

int weir_sqlite_listen_outcomes(weir_sqlite_listen_t *l, sqlite3 *db, const weir_store_write_t *w,
                                int64_t now_us)
{
    for (size_t i = 0; i < w->noutcomes; i++) {
        const weir_store_outcome_t *o = &w->outcomes[i];
        int rc = o->kind == WEIR_STORE_RETRY || o->kind == WEIR_STORE_DEAD_LETTER
                     ? reschedule(l, db, o, now_us)
                     : finish(l, db, o);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- writer: the bound on pending deliveries ------------------------------------------- */

static char *col_str(sqlite3_stmt *st, int i);

int weir_sqlite_listen_open(weir_sqlite_listen_t *l, sqlite3 *db, size_t pending_max,
                            weir_err_t *err)
{
    sqlite3_stmt *st = wget(l, db, W_PENDING);
    int rc = st != NULL ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc == SQLITE_ROW) {
        atomic_store(&l->pending, sqlite3_column_int64(st, 0));
        atomic_store(&l->committed_id, sqlite3_column_int64(st, 1));
        atomic_store(&l->durable_id, sqlite3_column_int64(st, 1)); /* left by an earlier run */
    }
    if (st != NULL) {
        done(st);
    }
    if (rc != SQLITE_ROW) {
        return weir_err_set(err, failed(db, "count pending deliveries"), NULL,
                            "cannot read the deliveries");
    }
    l->pending_max = pending_max;
    return 0;
}

void weir_sqlite_listen_txn_begin(weir_sqlite_listen_t *l)
{
    l->pending_txn = 0;
    l->dropped_txn = 0;
    l->created_txn = false;
}

void weir_sqlite_listen_txn_commit(weir_sqlite_listen_t *l, sqlite3 *db)
{
    atomic_fetch_add(&l->pending, l->pending_txn);
    atomic_fetch_add(&l->dropped, l->dropped_txn);
    if (!l->created_txn) {
        return;
    }
    sqlite3_stmt *st = wget(l, db, W_LAST_ID);
    if (st != NULL && sqlite3_step(st) == SQLITE_ROW) {
        atomic_store(&l->committed_id, sqlite3_column_int64(st, 0));
    } else {
        /* The deliveries stay unread until a later commit that creates some reads the id. */
        failed(db, "read the newest delivery id");
    }
    if (st != NULL) {
        done(st);
    }
}

int64_t weir_sqlite_listen_committed(weir_sqlite_listen_t *l)
{
    return atomic_load(&l->committed_id);
}

void weir_sqlite_listen_durable(weir_sqlite_listen_t *l, int64_t committed)
{
    atomic_store(&l->durable_id, committed);
}

int64_t weir_sqlite_listen_newest(weir_sqlite_listen_t *l)
{
    return atomic_load(&l->durable_id);
}

void weir_sqlite_listen_write_begin(weir_sqlite_listen_t *l)
{
    l->pending_write = 0;
    l->dropped_write = 0;
    l->created_write = false;
}

void weir_sqlite_listen_write_keep(weir_sqlite_listen_t *l)
{
    l->pending_txn += l->pending_write;
    l->dropped_txn += l->dropped_write;
    l->created_txn = l->created_txn || l->created_write;
}

void weir_sqlite_listen_stats(weir_sqlite_listen_t *l, int64_t *pending, uint64_t *dropped)
{
    *pending = atomic_load(&l->pending);
    *dropped = atomic_load(&l->dropped);
}

/* Gives up the oldest n pending deliveries of listener, counting them as failed. */
static int drop_oldest(weir_sqlite_listen_t *l, sqlite3 *db, const char *listener, int64_t n,
                       int *dropped)
{
    sqlite3_stmt *st = wget(l, db, W_DROP);
    if (st != NULL) {
        text(st, 1, listener);
        sqlite3_bind_int64(st, 2, n);
    }
    int rc = run(db, st, "give up pending deliveries", dropped);
    st = rc == 0 ? wget(l, db, W_DROP_TALLY) : NULL;
    if (st != NULL) {
        text(st, 1, listener);
        sqlite3_bind_int64(st, 2, *dropped);
    }
    return rc == 0 ? run(db, st, "count given up deliveries", NULL) : rc;
}

/*
 * Past the bound on pending deliveries, the oldest of the listener with the most are given up
 * (counted as failed): a target that has long been down, with many retries, pays for its own
 * backlog, while the other listeners and the ingest go on. The events stay in history.
 */
int weir_sqlite_listen_bound(weir_sqlite_listen_t *l, sqlite3 *db)
{
    int64_t count = atomic_load(&l->pending) + l->pending_txn + l->pending_write;
    if (l->pending_max == 0 || count <= (int64_t)l->pending_max || l->pending_write <= 0) {
        return 0;
    }
    int64_t over = count - (int64_t)l->pending_max + (int64_t)(l->pending_max / DROP_SLACK);
    sqlite3_stmt *st = wget(l, db, W_MOST);
    int rc = st != NULL ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc != SQLITE_ROW) {
        if (st != NULL) {
            done(st);
        }
        return rc == SQLITE_DONE ? 0 : failed(db, "find the longest backlog");
    }
    char *listener = col_str(st, 0);
    char *ns = col_str(st, 1);
    int64_t most = sqlite3_column_int64(st, 2);
    done(st);

    int dropped = 0;
    rc = drop_oldest(l, db, listener, over < most ? over : most, &dropped);
    if (rc == 0) {
        l->pending_write -= dropped;
        l->dropped_write += (uint64_t)dropped;
        WEIR_LOG(WEIR_LOG_WARN, MODULE, ns,
                 "gave up the %d oldest pending deliveries of listener %s: %lld were pending,"
                 " more than the limit of %zu",
                 dropped, listener, (long long)count, l->pending_max);
    }
    weir_free(listener);
    weir_free(ns);
    return rc;
}

/* ---- writer: listeners ----------------------------------------------------------------- */

/* Runs one of the statements that take a single name or id. */
static int by_name(weir_sqlite_listen_t *l, sqlite3 *db, wstmt_t id, const char *name, int *chg)
{
    sqlite3_stmt *st = wget(l, db, id);
    if (st != NULL) {
        text(st, 1, name);
    }
    return run(db, st, wsql[id], chg);
}

int weir_sqlite_listen_ns_delete(weir_sqlite_listen_t *l, sqlite3 *db, const char *ns)
{
    int removed = 0;
    int rc = by_name(l, db, W_NS_UNCOLLECT, ns, NULL);
    if (rc == 0) {
        rc = by_name(l, db, W_NS_UNDELIVER, ns, &removed);
    }
    l->pending_write -= removed;
    return rc == 0 ? by_name(l, db, W_NS_UNLISTEN, ns, NULL) : rc;
}

static int ns_present(weir_sqlite_listen_t *l, sqlite3 *db, const char *ns)
{
    sqlite3_stmt *st = wget(l, db, W_NS_PRESENT);
    if (st == NULL) {
        return WEIR_EIO;
    }
    text(st, 1, ns);
    int rc = sqlite3_step(st);
    done(st);
    if (rc == SQLITE_ROW) {
        return 0;
    }
    return rc == SQLITE_DONE ? WEIR_ENOTFOUND : failed(db, "look up namespace");
}

int weir_sqlite_listener_put(void *db, const weir_store_listener_t *li)
{
    sqlite3 *w;
    weir_sqlite_listen_t *l = weir_sqlite_listen_of(db, &w);
    int changes = 0;

    int rc = ns_present(l, w, li->ns);
    sqlite3_stmt *st = rc == 0 ? wget(l, w, W_PUT) : NULL;
    if (rc != 0 || st == NULL) {
        return rc != 0 ? rc : WEIR_EIO;
    }
    text(st, 1, li->id);
    text(st, 2, li->ns);
    sqlite3_bind_int64(st, 3, li->created_us);
    text(st, 4, li->spec);
    rc = run(w, st, "create listener", &changes);
    return rc == 0 && changes == 0 ? WEIR_EEXIST : rc;
}

static int delete_listener(weir_sqlite_listen_t *l, sqlite3 *w, const char *ns, const char *id,
                           int *removed)
{
    int changes = 0;

    sqlite3_stmt *st = wget(l, w, W_UNLISTEN);
    if (st != NULL) {
        text(st, 1, id);
        text(st, 2, ns);
    }
    int rc = run(w, st, "delete listener", &changes);
    if (rc == 0 && changes == 0) {
        return WEIR_ENOTFOUND;
    }
    if (rc == 0) {
        rc = by_name(l, w, W_UNCOLLECT, id, NULL);
    }
    return rc == 0 ? by_name(l, w, W_UNDELIVER, id, removed) : rc;
}

/* Runs in the writer's transaction, in a savepoint of its own, so that a failure halfway
 * leaves the listener whole rather than half deleted in a transaction that still commits. */
int weir_sqlite_listener_delete(void *db, const char *ns, const char *id)
{
    sqlite3 *w;
    weir_sqlite_listen_t *l = weir_sqlite_listen_of(db, &w);
    int removed = 0;

    if (sqlite3_exec(w, "SAVEPOINT listener_delete", NULL, NULL, NULL) != SQLITE_OK) {
        return failed(w, "begin deleting a listener");
    }
    int rc = delete_listener(l, w, ns, id, &removed);
    if (rc != 0) {
        sqlite3_exec(w, "ROLLBACK TO listener_delete", NULL, NULL, NULL);
    }
    if (sqlite3_exec(w, "RELEASE listener_delete", NULL, NULL, NULL) != SQLITE_OK) {
        return failed(w, "end deleting a listener");
    }
    if (rc == 0) {
        l->pending_txn -= removed; /* what commits with the transaction */
    }
    return rc;
}

/* ---- reads ----------------------------------------------------------------------------- */

/* Takes the reader (opening it on first use) and prepares a statement; NULL on failure. */
static sqlite3_stmt *rtake(weir_sqlite_listen_t *l, rstmt_t id)
{
    pthread_mutex_lock(&l->lock);
    if (l->reader == NULL) {
        int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
        if (sqlite3_open_v2(l->path, &l->reader, flags, NULL) != SQLITE_OK) {
            failed(l->reader, "open listener reader");
            sqlite3_close(l->reader);
            l->reader = NULL;
            pthread_mutex_unlock(&l->lock);
            return NULL;
        }
        sqlite3_busy_timeout(l->reader, BUSY_TIMEOUT_MS);
    }
    sqlite3_stmt *st = prepare(l->reader, &l->r[id], rsql[id]);
    if (st == NULL) {
        pthread_mutex_unlock(&l->lock);
    }
    return st;
}

static void rgive(weir_sqlite_listen_t *l, sqlite3_stmt *st)
{
    done(st);
    pthread_mutex_unlock(&l->lock);
}

static int read_failed(weir_err_t *err)
{
    return weir_err_set(err, WEIR_EIO, NULL, "storage failed; see the server log");
}

static char *col_str(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s != NULL ? weir_strndup((const char *)s, (size_t)sqlite3_column_bytes(st, i)) : NULL;
}

static void listener_fill(sqlite3_stmt *st, weir_store_listener_t *li)
{
    li->id = col_str(st, 0);
    li->ns = col_str(st, 1);
    li->spec = col_str(st, 2);
    li->created_us = sqlite3_column_int64(st, 3);
    li->delivered = sqlite3_column_int64(st, 4);
    li->failed = sqlite3_column_int64(st, 5);
    li->dead_lettered = sqlite3_column_int64(st, 6);
}

/* Grows *list by one zeroed element when it is full. */
static void *grow(void *list, size_t count, size_t *cap, size_t size)
{
    if (count < *cap) {
        return list;
    }
    *cap = *cap == 0 ? 16 : *cap * 2;
    list = weir_realloc(list, *cap * size);
    memset((char *)list + count * size, 0, (*cap - count) * size);
    return list;
}

int weir_sqlite_listeners(void *db, const char *ns, const char *after, size_t limit,
                          weir_store_listener_t **out, size_t *n, weir_err_t *err)
{
    weir_sqlite_listen_t *l = weir_sqlite_listen_of(db, NULL);
    weir_store_listener_t *list = NULL;
    size_t count = 0, cap = 0;
    int rc;

    sqlite3_stmt *st = rtake(l, R_LIST);
    if (st == NULL) {
        return read_failed(err);
    }
    text(st, 1, ns);
    text(st, 2, after != NULL ? after : "");
    sqlite3_bind_int64(st, 3, limit > INT32_MAX ? INT32_MAX : (int64_t)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        list = grow(list, count, &cap, sizeof(*list));
        listener_fill(st, &list[count++]);
    }
    rgive(l, st);
    if (rc != SQLITE_DONE) {
        weir_store_listeners_free(list, count);
        return read_failed(err);
    }
    *out = list;
    *n = count;
    return 0;
}

int weir_sqlite_listener_get(void *db, const char *ns, const char *id, weir_store_listener_t *out,
                             weir_err_t *err)
{
    weir_sqlite_listen_t *l = weir_sqlite_listen_of(db, NULL);

    sqlite3_stmt *st = rtake(l, R_GET);
    if (st == NULL) {
        return read_failed(err);
    }
    text(st, 1, ns);
    text(st, 2, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        listener_fill(st, out);
        out->pending = sqlite3_column_int64(st, 7);
    }
    rgive(l, st);
    if (rc == SQLITE_DONE) {
        return weir_err_set(err, WEIR_ENOTFOUND, "id", "no such listener");
    }
    return rc == SQLITE_ROW ? 0 : read_failed(err);
}

int weir_sqlite_collected(void *db, const char *id, weir_store_collected_t **out, size_t *n,
                          weir_err_t *err)
{
    weir_sqlite_listen_t *l = weir_sqlite_listen_of(db, NULL);
    weir_store_collected_t *list = NULL;
    size_t count = 0, cap = 0;
    int rc;

    sqlite3_stmt *st = rtake(l, R_COLLECTED);
    if (st == NULL) {
        return read_failed(err);
    }
    text(st, 1, id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        list = grow(list, count, &cap, sizeof(*list));
        list[count].key = col_str(st, 0);
        list[count].type = col_str(st, 1);
        list[count].received_us = sqlite3_column_int64(st, 2);
        list[count].event_id = col_str(st, 3);
        count++;
    }
    rgive(l, st);
    if (rc != SQLITE_DONE) {
        weir_store_collected_free(list, count);
        return read_failed(err);
    }
    *out = list;
    *n = count;
    return 0;
}

static void delivery_fill(sqlite3_stmt *st, weir_store_delivery_t *d)
{
    d->id = sqlite3_column_int64(st, 0);
    d->listener = col_str(st, 1);
    d->ns = col_str(st, 2);
    d->seq = sqlite3_column_int64(st, 3);
    d->payload = col_str(st, 4);
    d->combined = sqlite3_column_int(st, 5) != 0;
    d->attempts = (unsigned)sqlite3_column_int(st, 6);
    d->dead_letter = sqlite3_column_int(st, 7) != 0;
    d->due_us = sqlite3_column_int64(st, 8);
    d->created_us = sqlite3_column_int64(st, 9);
    d->last_status = sqlite3_column_int(st, 10);
    d->last_error = col_str(st, 11);
    d->error_status = sqlite3_column_int(st, 12);
    d->error_data = col_str(st, 13);
}

/* Gathers the rows of a bound delivery query; releases the reader. */
static int deliveries_collect(weir_sqlite_listen_t *l, sqlite3_stmt *st,
                              weir_store_delivery_t **out, size_t *n, weir_err_t *err)
{
    weir_store_delivery_t *list = NULL;
    size_t count = 0, cap = 0;
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        list = grow(list, count, &cap, sizeof(*list));
        delivery_fill(st, &list[count++]);
    }
    rgive(l, st);
    if (rc != SQLITE_DONE) {
        weir_store_deliveries_free(list, count);
        return read_failed(err);
    }
    *out = list;
    *n = count;
    return 0;
}

int weir_sqlite_deliveries_due(void *db, const char *listener, int64_t now_us, int64_t after_due,
                               int64_t after_id, size_t limit, weir_store_delivery_t **out,
                               size_t *n, weir_err_t *err)
{
    weir_sqlite_listen_t *l = weir_sqlite_listen_of(db, NULL);

    sqlite3_stmt *st = rtake(l, listener != NULL ? R_DUE_OF : R_DUE);
    if (st == NULL) {
        return read_failed(err);
    }
    if (listener != NULL) {
        sqlite3_bind_text(st, 5, listener, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 1, now_us);
    sqlite3_bind_int64(st, 2, after_due);
    sqlite3_bind_int64(st, 3, after_id);
    sqlite3_bind_int64(st, 4, limit > INT32_MAX ? INT32_MAX : (int64_t)limit);
    sqlite3_bind_int64(st, 6, atomic_load(&l->durable_id));
    return deliveries_collect(l, st, out, n, err);
}

int weir_sqlite_deliveries_new(void *db, int64_t after_id, size_t limit,
                               weir_store_delivery_t **out, size_t *n, weir_err_t *err)
{
    weir_sqlite_listen_t *l = weir_sqlite_listen_of(db, NULL);

    sqlite3_stmt *st = rtake(l, R_NEW);
    if (st == NULL) {
        return read_failed(err);
    }
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int64(st, 2, limit > INT32_MAX ? INT32_MAX : (int64_t)limit);
    sqlite3_bind_int64(st, 3, atomic_load(&l->durable_id));
    return deliveries_collect(l, st, out, n, err);
}

/* Runs a one-row, one-column query; *v gets its integer, or dflt when it is NULL. */
static int scalar(weir_sqlite_listen_t *l, rstmt_t id, int64_t arg, int64_t dflt, int64_t *v,
                  weir_err_t *err)
{
    sqlite3_stmt *st = rtake(l, id);
    if (st == NULL) {
        return read_failed(err);
    }
    sqlite3_bind_int64(st, 1, arg);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_type(st, 0) == SQLITE_NULL ? dflt : sqlite3_column_int64(st, 0);
    }
    rgive(l, st);
    return rc == SQLITE_ROW ? 0 : read_failed(err);
}

int weir_sqlite_deliveries_pending(void *db, int64_t now_us, int64_t *count, int64_t *next_due_us,
                                   weir_err_t *err)
{
    weir_sqlite_listen_t *l = weir_sqlite_listen_of(db, NULL);

    int rc = count != NULL ? scalar(l, R_COUNT, 0, 0, count, err) : 0;
    return rc == 0 ? scalar(l, R_NEXT, now_us, INT64_MAX, next_due_us, err) : rc;
}
