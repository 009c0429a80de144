//! One connection type over both backends: SQLite (embedded, the default) and PostgreSQL
//! (several replicas on one database). The store writes its SQL once, in the dialect both
//! accept (`?1` placeholders, `ON CONFLICT`, `RETURNING`); for PostgreSQL the placeholders are
//! rewritten to `$1` when a statement is first prepared, and prepared statements are cached per
//! connection as rusqlite caches them.
//!
//! Values cross the boundary as [`Param`] (in) and [`Value`] (out): integers, reals, text,
//! bytes and NULL, the types the schema uses on both sides (`BIGINT`, `DOUBLE PRECISION`,
//! `TEXT`, `BYTEA` on PostgreSQL). Nothing here knows a table.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;

use postgres::types::{to_sql_checked, IsNull, ToSql as PgToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};

/// A failed statement.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite said no.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no, or the connection to it failed.
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    /// A query that must return a row returned none.
    #[error("the query returned no row")]
    NoRows,
    /// A column held a value of another type than the store expects.
    #[error("column {column}: expected {expected}, found {found}")]
    Type {
        /// The column's index.
        column: usize,
        /// What the store expected.
        expected: &'static str,
        /// What was there.
        found: &'static str,
    },
}

/// Which database a connection speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// NULL.
    Null,
    /// An integer (also booleans, as 0 and 1).
    Int(i64),
    /// A real number.
    Real(f64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// A column's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A real number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    /// Column `i` as `T`.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, Error> {
        let value = self.0.get(i).unwrap_or(&Value::Null);
        T::from_value(value).ok_or(Error::Type {
            column: i,
            expected: T::EXPECTED,
            found: value.type_name(),
        })
    }
}

/// A Rust type a column can be read as.
pub trait FromValue: Sized {
    /// What the error says was expected.
    const EXPECTED: &'static str;
    /// The value as `Self`, when it is one.
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// Unsigned integers: the stored integer when it fits.
macro_rules! unsigned_values {
    ($($t:ty => $expected:literal),*) => {$(
        impl FromValue for $t {
            const EXPECTED: &'static str = $expected;
            fn from_value(value: &Value) -> Option<Self> {
                i64::from_value(value).and_then(|i| <$t>::try_from(i).ok())
            }
        }
    )*};
}
unsigned_values!(
    u64 => "a non-negative integer",
    u32 => "a small non-negative integer",
    u16 => "a 16-bit non-negative integer"
);

impl FromValue for bool {
    const EXPECTED: &'static str = "a boolean (0 or 1)";
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).map(|i| i != 0)
    }
}

impl FromValue for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(r) => Some(*r),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "text";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    const EXPECTED: &'static str = "bytes";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

macro_rules! int_params {
    ($($t:ty),*) => {$(
        impl From<$t> for Param<'_> {
            fn from(v: $t) -> Self {
                Param::Int(v as i64)
            }
        }
    )*};
}
int_params!(i64, i32, u32, u16, u8, u64, usize);

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Int(i64::from(v))
    }
}

impl From<f64> for Param<'_> {
    fn from(v: f64) -> Self {
        Param::Real(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Blob(v)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Param<'a> {
    fn from(v: &'a [u8; N]) -> Self {
        Param::Blob(v)
    }
}

impl<'a, T> From<Option<T>> for Param<'a>
where
    T: Into<Param<'a>>,
{
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

/// `params![a, b, c]`: the statement's parameters, each converted with `Param::from`.
macro_rules! params {
    () => { &[] as &[$crate::store::sql::Param<'_>] };
    ($($p:expr),+ $(,)?) => { &[$($crate::store::sql::Param::from($p)),+] as &[$crate::store::sql::Param<'_>] };
}
pub(crate) use params;

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Null => ValueRef::Null,
            Param::Int(i) => ValueRef::Integer(i),
            Param::Real(r) => ValueRef::Real(r),
            Param::Text(t) => ValueRef::Text(t.as_bytes()),
            Param::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl PgToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(i) => match *ty {
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Param::Real(r) => r.to_sql(ty, out),
            Param::Text(t) => t.to_sql(ty, out),
            Param::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// A connection to either backend. Not `Sync`: one thread uses it at a time (the writer, or
/// a reader checked out of the pool).
pub struct Conn {
    inner: Inner,
    /// Rows changed by statements on a PostgreSQL connection (SQLite counts its own), for
    /// the writer's "did this reach the disk" check.
    changed: Cell<u64>,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    /// Boxed: a PostgreSQL client with its statement cache is three times an SQLite handle.
    Postgres(Box<RefCell<Pg>>),
}

struct Pg {
    client: OffRuntime,
    statements: HashMap<String, postgres::Statement>,
    /// Where to connect again when the session is lost.
    url: String,
}

impl Conn {
    /// A connection over an open SQLite connection.
    pub fn sqlite(conn: rusqlite::Connection) -> Conn {
        Conn {
            inner: Inner::Sqlite(conn),
            changed: Cell::new(0),
        }
    }

    /// Connects to the PostgreSQL database at `url`; [`Conn::reconnect_if_closed`] connects
    /// there again after the session is lost.
    pub fn connect_postgres(url: &str) -> Result<Conn, Error> {
        Ok(Conn {
            inner: Inner::Postgres(Box::new(RefCell::new(Pg {
                client: OffRuntime(Some(postgres::Client::connect(url, postgres::NoTls)?)),
                statements: HashMap::new(),
                url: url.to_owned(),
            }))),
            changed: Cell::new(0),
        })
    }

    /// After PostgreSQL ended the session (a restart, a failover, a killed backend): connects
    /// again, with an empty statement cache. `Ok(true)` when it did; an error when the
    /// database is still unreachable. SQLite never needs to.
    pub fn reconnect_if_closed(&self) -> Result<bool, Error> {
        let Inner::Postgres(pg) = &self.inner else {
            return Ok(false);
        };
        let mut pg = pg.borrow_mut();
        if !pg.client.is_closed() {
            return Ok(false);
        }
        let client = postgres::Client::connect(&pg.url, postgres::NoTls)?;
        pg.client = OffRuntime(Some(client));
        pg.statements.clear();
        Ok(true)
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection underneath (file path, PRAGMAs, fault probes).
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    /// Rows changed through this connection so far.
    pub fn changed(&self) -> u64 {
        match &self.inner {
            Inner::Sqlite(c) => c.total_changes(),
            Inner::Postgres(_) => self.changed.get(),
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, Error> {
        match &self.inner {
            Inner::Sqlite(c) => {
                Ok(c.prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params))? as u64)
            }
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = pg.statement(sql)?;
                let n = pg.client.execute(&stmt, &pg_params(params))?;
                self.changed.set(self.changed.get() + n);
                Ok(n)
            }
        }
    }

    /// Every row of a query.
    pub fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, Error> {
        self.query_map(sql, params, |r| Ok(r.clone()))
    }

    /// Every row of a query, each through `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        mut f: impl FnMut(&Row) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let columns = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let row = Row((0..columns)
                        .map(|i| r.get_ref(i).map(sqlite_value))
                        .collect::<Result<_, _>>()?);
                    out.push(f(&row)?);
                }
                Ok(out)
            }
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = pg.statement(sql)?;
                let rows = pg.client.query(&stmt, &pg_params(params))?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(f(&pg_row(r)?)?);
                }
                if returns_changes(sql) {
                    self.changed.set(self.changed.get() + rows.len() as u64);
                }
                Ok(out)
            }
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, Error> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query; [`Error::NoRows`] when there is none.
    pub fn query_one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row, Error> {
        self.query_opt(sql, params)?.ok_or(Error::NoRows)
    }

    /// Runs statements without parameters (transaction control, DDL).
    pub fn batch(&self, sql: &str) -> Result<(), Error> {
        match &self.inner {
            Inner::Sqlite(c) => c.execute_batch(sql)?,
            Inner::Postgres(pg) => pg.borrow_mut().client.batch_execute(sql)?,
        }
        Ok(())
    }

    /// Whether the connection to the database is gone (PostgreSQL; SQLite never is).
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(_) => false,
            Inner::Postgres(pg) => pg.borrow().client.is_closed(),
        }
    }
}

impl Pg {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, Error> {
        if let Some(stmt) = self.statements.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.client.prepare(&dollar_placeholders(sql))?;
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

/// The blocking client, whose drop (it says goodbye to the server through its own runtime)
/// never runs on an async thread, where that would panic: a connection dropped there is
/// dropped on a thread of its own.
struct OffRuntime(Option<postgres::Client>);

impl std::ops::Deref for OffRuntime {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        self.0.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for OffRuntime {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for OffRuntime {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(client));
            }
        }
    }
}

fn pg_params<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn PgToSql + Sync)> {
    params.iter().map(|p| p as &(dyn PgToSql + Sync)).collect()
}

fn returns_changes(sql: &str) -> bool {
    let head = sql.trim_start().get(..6).unwrap_or("").to_ascii_uppercase();
    matches!(head.as_str(), "INSERT" | "UPDATE" | "DELETE")
}

fn sqlite_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn pg_row(r: &postgres::Row) -> Result<Row, Error> {
    let mut out = Vec::with_capacity(r.len());
    for (i, column) in r.columns().iter().enumerate() {
        let v = match *column.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => r
                .try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into())),
            // `SELECT pg_advisory_xact_lock(..)` and the like.
            Type::VOID => None,
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

/// `?1` → `$1` outside quoted strings and identifiers (PostgreSQL's placeholders).
fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') if chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            (None, c) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_strings_only() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12"
        );
        assert_eq!(dollar_placeholders("SELECT '?'"), "SELECT '?'");
    }

    #[test]
    fn sqlite_round_trips_every_value_type() {
        let conn = Conn::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        conn.batch("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)")
            .unwrap();
        let none: Option<&str> = None;
        let n = conn
            .execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)",
                params![7_i64, 0.5, "text", &[1_u8, 2][..], none],
            )
            .unwrap();
        assert_eq!(n, 1);
        let row = conn
            .query_one("SELECT i, r, s, b, n FROM t", params![])
            .unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert_eq!(row.get::<f64>(1).unwrap(), 0.5);
        assert_eq!(row.get::<String>(2).unwrap(), "text");
        assert_eq!(row.get::<Vec<u8>>(3).unwrap(), vec![1, 2]);
        assert_eq!(row.get::<Option<String>>(4).unwrap(), None);
        assert!(matches!(
            row.get::<String>(0),
            Err(Error::Type { column: 0, .. })
        ));
        assert!(conn.changed() >= 1);
        assert!(matches!(
            conn.query_one("SELECT i FROM t WHERE i = ?1", params![8_i64]),
            Err(Error::NoRows)
        ));
    }
}
