//! The store's connection layer against a real PostgreSQL: the same statements, parameters and
//! row types as on SQLite (placeholders rewritten, every value type round-trips).

use flag_server::store::sql::{Backend, Conn, Error, Param};

use crate::common::postgres;

fn connect() -> Conn {
    let url = postgres::database();
    Conn::postgres(::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect"))
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
