//! The store's connection layer against a real PostgreSQL: the same statements, parameters and
//! row types as on SQLite (placeholders rewritten, every value type round-trips).

use flag_server::store::sql::{Backend, Conn, Error, Param};

use crate::common::postgres;

fn connect() -> Conn {
    let url = postgres::database();
    Conn::connect_postgres(&url).expect("connect")
}

#[test]
fn every_value_type_round_trips_through_postgres() {
    let conn = connect();
    assert_eq!(conn.backend(), Backend::Postgres);
    conn.batch(
        "CREATE TABLE t (i BIGINT, r DOUBLE PRECISION, s TEXT, b BYTEA, n TEXT, flag BOOLEAN)",
    )
    .unwrap();
    let params = [
        Param::Int(7),
        Param::Real(0.5),
        Param::Text("it's ?1"),
        Param::Blob(&[1, 2]),
        Param::Null,
        Param::Int(1),
    ];
    let n = conn
        .execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &params)
        .unwrap();
    assert_eq!(n, 1);
    let row = conn
        .query_one(
            "SELECT i, r, s, b, n, flag FROM t WHERE s = ?1 AND '?2' = '?2'",
            &[Param::Text("it's ?1")],
        )
        .unwrap();
    assert_eq!(row.get::<i64>(0).unwrap(), 7);
    assert_eq!(row.get::<f64>(1).unwrap(), 0.5);
    assert_eq!(row.get::<String>(2).unwrap(), "it's ?1");
    assert_eq!(row.get::<Vec<u8>>(3).unwrap(), vec![1, 2]);
    assert_eq!(row.get::<Option<String>>(4).unwrap(), None);
    assert!(row.get::<bool>(5).unwrap());
    assert!(conn.changed() >= 1);
    let returned = conn
        .query("UPDATE t SET i = i + 1 RETURNING i", &[])
        .unwrap();
    assert_eq!(returned[0].get::<u64>(0).unwrap(), 8);
    assert!(matches!(
        conn.query_one("SELECT i FROM t WHERE i = ?1", &[Param::Int(99)]),
        Err(Error::NoRows)
    ));
}

#[test]
fn savepoints_roll_back_one_request_and_keep_the_others() {
    let conn = connect();
    conn.batch("CREATE TABLE t (x BIGINT PRIMARY KEY)").unwrap();
    conn.batch("BEGIN").unwrap();
    for x in [1_i64, 1, 2] {
        conn.batch("SAVEPOINT request").unwrap();
        match conn.execute("INSERT INTO t VALUES (?1)", &[Param::Int(x)]) {
            Ok(_) => conn.batch("RELEASE request").unwrap(),
            Err(_) => conn.batch("ROLLBACK TO request; RELEASE request").unwrap(),
        }
    }
    conn.batch("COMMIT").unwrap();
    let rows: Vec<i64> = conn
        .query_map("SELECT x FROM t ORDER BY x", &[], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, vec![1, 2]);
}

/// The writer's requests in one group on PostgreSQL: a request that fails before any round
/// trip of its own is dropped unsent, one that queried after writing rolls back to its
/// savepoint, one that only read before it failed needs none; the others commit, and
/// everything deferred goes with the COMMIT.
#[test]
fn a_failed_request_leaves_nothing_and_its_group_mates_commit() {
    let conn = connect();
    conn.batch("CREATE TABLE t (x BIGINT PRIMARY KEY)").unwrap();
    let insert = "INSERT INTO t VALUES (?1)";
    let count = "SELECT COUNT(*) FROM t";
    conn.batch("BEGIN").unwrap();
    // Kept: deferred only.
    conn.begin_request().unwrap();
    conn.defer(insert, &[Param::Int(1)]).unwrap();
    conn.end_request(true).unwrap();
    // Failed after deferring two rows: neither is sent.
    conn.begin_request().unwrap();
    conn.defer(insert, &[Param::Int(2)]).unwrap();
    conn.defer(insert, &[Param::Int(3)]).unwrap();
    conn.end_request(false).unwrap();
    // Read first (no savepoint needed; the first request's row goes out), then failed: sees
    // what the first request wrote.
    conn.begin_request().unwrap();
    let seen: i64 = conn.query_one(count, &[]).unwrap().get(0).unwrap();
    assert_eq!(seen, 1);
    conn.defer(insert, &[Param::Int(4)]).unwrap();
    conn.end_request(false).unwrap();
    // Wrote, then queried (its row went out), then failed: rolled back to its savepoint.
    conn.begin_request().unwrap();
    conn.defer(insert, &[Param::Int(5)]).unwrap();
    let seen: i64 = conn.query_one(count, &[]).unwrap().get(0).unwrap();
    assert_eq!(seen, 2);
    conn.defer(insert, &[Param::Int(6)]).unwrap();
    conn.end_request(false).unwrap();
    // Wrote, queried, kept.
    conn.begin_request().unwrap();
    conn.defer(insert, &[Param::Int(7)]).unwrap();
    let seen: i64 = conn.query_one(count, &[]).unwrap().get(0).unwrap();
    assert_eq!(seen, 2);
    conn.end_request(true).unwrap();
    // Kept, deferred only: goes with the COMMIT.
    conn.begin_request().unwrap();
    conn.defer(insert, &[Param::Int(8)]).unwrap();
    conn.end_request(true).unwrap();
    let before_commit: i64 = conn
        .query_one_then(count, &[], "COMMIT")
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(before_commit, 3);
    let rows: Vec<i64> = conn
        .query_map("SELECT x FROM t ORDER BY x", &[], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, vec![1, 7, 8]);
}

/// A deferred statement the database refuses at the group's COMMIT: the error is returned
/// and nothing of the transaction is saved (PostgreSQL answers that COMMIT with a rollback).
#[test]
fn a_refused_deferred_statement_fails_the_commit_and_saves_nothing() {
    let conn = connect();
    conn.batch("CREATE TABLE t (x BIGINT PRIMARY KEY)").unwrap();
    let insert = "INSERT INTO t VALUES (?1)";
    conn.batch("BEGIN").unwrap();
    for x in [1_i64, 1, 2] {
        conn.begin_request().unwrap();
        conn.defer(insert, &[Param::Int(x)]).unwrap();
        conn.end_request(true).unwrap();
    }
    let failed = conn.query_one_then("SELECT COUNT(*) FROM t", &[], "COMMIT");
    assert!(matches!(failed, Err(Error::Postgres(_))), "{failed:?}");
    let rows: Vec<i64> = conn
        .query_map("SELECT x FROM t ORDER BY x", &[], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, Vec::<i64>::new());
}

/// What a client is answered when PostgreSQL fails: a lost connection is a 503 it may retry
/// (nothing was saved); a broken unique key is the store's bug, a 500, as on SQLite.
#[test]
fn a_lost_connection_is_503_and_a_unique_violation_500() {
    use actix_web::http::StatusCode;
    use actix_web::ResponseError;
    use flag_server::error::ApiError;

    let url = postgres::database();
    let conn = Conn::connect_postgres(&url).unwrap();
    conn.batch("CREATE TABLE t (x BIGINT PRIMARY KEY)").unwrap();
    let insert = "INSERT INTO t VALUES (?1)";
    conn.execute(insert, &[Param::Int(1)]).unwrap();
    let duplicate = conn.execute(insert, &[Param::Int(1)]).unwrap_err();
    assert_eq!(
        ApiError::from(duplicate).status_code(),
        StatusCode::INTERNAL_SERVER_ERROR
    );

    let pid: i64 = conn
        .query_one("SELECT pg_backend_pid()::BIGINT", &[])
        .unwrap()
        .get(0)
        .unwrap();
    let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    // Waits (up to 10 s) until the session is gone.
    let terminated: bool = admin
        .query_one(
            "SELECT pg_terminate_backend($1::BIGINT::INT, 10000)",
            &[&pid],
        )
        .unwrap()
        .get(0);
    assert!(terminated);
    let lost = conn.execute(insert, &[Param::Int(2)]).unwrap_err();
    let e = ApiError::from(lost);
    assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        e.to_string(),
        "the database is unreachable; the change was not saved"
    );
}
