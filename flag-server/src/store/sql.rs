//! One connection type over both backends: SQLite (embedded, the default) and PostgreSQL
//! (several replicas on one database). The store writes its SQL once, in the dialect both
//! accept (`?1` placeholders, `ON CONFLICT`, `RETURNING`); for PostgreSQL the placeholders are
//! rewritten to `$1` when a statement is first prepared, and prepared statements are cached per
//! connection as rusqlite caches them.
//!
//! Values cross the boundary as [`Param`] (in) and [`Value`] (out): integers, reals, text,
//! bytes and NULL, the types the schema uses on both sides (`BIGINT`, `DOUBLE PRECISION`,
//! `TEXT`, `BYTEA` on PostgreSQL). Nothing here knows a table.

use std::cell::RefCell;
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
    /// The runtime that drives a PostgreSQL session could not be built.
    #[error("cannot start a PostgreSQL session: {0}")]
    Runtime(std::io::Error),
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

/// A [`Param`] kept for a deferred statement.
#[derive(Debug, Clone)]
enum OwnedParam {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&Param<'_>> for OwnedParam {
    fn from(p: &Param<'_>) -> Self {
        match *p {
            Param::Null => OwnedParam::Null,
            Param::Int(i) => OwnedParam::Int(i),
            Param::Real(r) => OwnedParam::Real(r),
            Param::Text(t) => OwnedParam::Text(t.to_owned()),
            Param::Blob(b) => OwnedParam::Blob(b.to_vec()),
        }
    }
}

impl OwnedParam {
    fn as_param(&self) -> Param<'_> {
        match self {
            OwnedParam::Null => Param::Null,
            OwnedParam::Int(i) => Param::Int(*i),
            OwnedParam::Real(r) => Param::Real(*r),
            OwnedParam::Text(t) => Param::Text(t),
            OwnedParam::Blob(b) => Param::Blob(b),
        }
    }
}

impl PgToSql for OwnedParam {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        self.as_param().to_sql(ty, out)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
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
}

enum Inner {
    Sqlite(rusqlite::Connection),
    /// Boxed: a PostgreSQL client with its statement cache is three times an SQLite handle.
    Postgres(Box<RefCell<Pg>>),
}

/// A PostgreSQL session: tokio-postgres on a current-thread runtime of its own, driven by
/// the one thread using the connection (as the blocking `postgres` crate does), so that
/// several statements can be in flight at once ([`Conn::defer`]).
struct Pg {
    client: tokio_postgres::Client,
    /// Drives the connection while a statement runs. Dropped off async threads (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    statements: HashMap<String, tokio_postgres::Statement>,
    /// Statements sent with the next round trip ([`Conn::defer`]).
    deferred: Vec<Deferred>,
    /// The writer's request under way ([`Conn::begin_request`]).
    request: Option<Request>,
    /// Rows changed through this session, for the writer's "did this reach the disk" check.
    changed: u64,
    /// Where to connect again when the session is lost.
    url: String,
}

/// A request of the writer's group under way on PostgreSQL: where its deferred statements
/// start, and whether its savepoint has been sent. A request that makes no round trip of its
/// own needs none: what it deferred is still here to drop when it fails. The savepoint goes
/// out, in front of its statements, with the first round trip that sends one of them (or
/// writes itself); a read before it has written needs none.
struct Request {
    start: usize,
    savepoint: bool,
}

/// The savepoint of a request ([`Conn::begin_request`]).
const SAVEPOINT: &str = "SAVEPOINT request";

/// A statement waiting for the next round trip.
enum Deferred {
    Execute(tokio_postgres::Statement, Vec<OwnedParam>),
    Batch(String),
}

impl Pg {
    fn connect(url: &str) -> Result<Pg, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let (client, connection) =
            runtime.block_on(tokio_postgres::connect(url, tokio_postgres::NoTls))?;
        runtime.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "PostgreSQL connection ended");
            }
        });
        Ok(Pg {
            client,
            runtime: Some(runtime),
            statements: HashMap::new(),
            deferred: Vec::new(),
            request: None,
            changed: 0,
            url: url.to_owned(),
        })
    }

    /// Whether the session is gone, including what the server said since the last round
    /// trip: the connection reads what is waiting on its socket first (a terminated backend's
    /// last message, or the end of the stream), without a round trip of its own.
    fn closed(&self) -> bool {
        if let Some(runtime) = &self.runtime {
            // A yield lets the runtime poll its I/O driver, and the connection task read.
            runtime.block_on(async {
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
            });
        }
        self.client.is_closed()
    }

    fn statement(&mut self, sql: &str) -> Result<tokio_postgres::Statement, Error> {
        if let Some(stmt) = self.statements.get(sql) {
            return Ok(stmt.clone());
        }
        let sql_dollar = dollar_placeholders(sql);
        let runtime = self.runtime.as_ref().expect("present until dropped");
        // Alone: a statement's preparation does not wait for the deferred ones.
        let stmt = runtime.block_on(self.client.prepare(&sql_dollar))?;
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    /// Runs `op` after every deferred statement, all sent in one round trip (tokio-postgres
    /// pipelines the requests that are in flight together); the first error wins, and rows
    /// changed by deferred statements are counted. A request under way sends its savepoint
    /// first.
    fn run(&mut self, op: Op<'_>) -> Result<Out, Error> {
        let writes = self.deferred.len() > self.request.as_ref().map_or(0, |r| r.start)
            || match &op {
                Op::Queries { writes, .. } => *writes,
                Op::Flush => false,
                _ => true,
            };
        if let Some(request) = self.request.as_mut().filter(|r| !r.savepoint) {
            if writes {
                self.deferred
                    .insert(request.start, Deferred::Batch(SAVEPOINT.to_owned()));
                request.savepoint = true;
            }
            // What it defers next starts after what goes now.
            request.start = 0;
        }
        let deferred = std::mem::take(&mut self.deferred);
        let client = &self.client;
        let runtime = self.runtime.as_ref().expect("present until dropped");
        let (earlier, result) = runtime.block_on(async {
            let earlier = futures_util::future::join_all(deferred.iter().map(|d| async move {
                match d {
                    Deferred::Execute(stmt, params) => {
                        let refs: Vec<&(dyn PgToSql + Sync)> =
                            params.iter().map(|p| p as &(dyn PgToSql + Sync)).collect();
                        client.execute(stmt, &refs).await
                    }
                    Deferred::Batch(sql) => client.batch_execute(sql).await.map(|()| 0),
                }
            }));
            let op = async {
                Ok(match op {
                    Op::Execute(stmt, params) => Out::Changed(client.execute(stmt, params).await?),
                    Op::Batch(sql) => Out::Changed(client.batch_execute(sql).await.map(|()| 0)?),
                    Op::QueryThen(stmt, params, then) => {
                        let (rows, then) = futures_util::join!(
                            client.query(stmt, params),
                            client.batch_execute(then)
                        );
                        // An error of the query comes first: after it, PostgreSQL answers a
                        // COMMIT with a ROLLBACK, which is no error.
                        let rows = rows?;
                        then?;
                        Out::Rows(rows)
                    }
                    Op::Queries { list, .. } => Out::Many(
                        futures_util::future::try_join_all(
                            list.iter().map(|(stmt, params)| client.query(stmt, params)),
                        )
                        .await?,
                    ),
                    Op::Flush => Out::Changed(0),
                })
            };
            futures_util::join!(earlier, op)
        });
        for outcome in earlier {
            self.changed += outcome?;
        }
        result
    }
}

/// What [`Pg::run`] runs after the deferred statements.
enum Op<'a> {
    Execute(
        &'a tokio_postgres::Statement,
        &'a [&'a (dyn PgToSql + Sync)],
    ),
    Batch(&'a str),
    /// A query, then statements without parameters, in the same round trip.
    QueryThen(
        &'a tokio_postgres::Statement,
        &'a [&'a (dyn PgToSql + Sync)],
        &'a str,
    ),
    /// Queries in the same round trip, answered in order; `writes` when one writes (`INSERT
    /// ... RETURNING`), which needs the request's savepoint.
    Queries {
        list: Vec<(tokio_postgres::Statement, Vec<&'a (dyn PgToSql + Sync)>)>,
        writes: bool,
    },
    /// Nothing: just the deferred statements.
    Flush,
}

/// What it answered.
enum Out {
    Changed(u64),
    Rows(Vec<postgres::Row>),
    Many(Vec<Vec<postgres::Row>>),
}

impl Drop for Pg {
    /// A runtime must not be dropped on an async thread (it would panic): a session dropped
    /// there is dropped on a thread of its own.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(runtime));
            }
        }
    }
}

impl Conn {
    /// A connection over an open SQLite connection.
    pub fn sqlite(conn: rusqlite::Connection) -> Conn {
        Conn {
            inner: Inner::Sqlite(conn),
        }
    }

    /// Connects to the PostgreSQL database at `url`; [`Conn::reconnect_if_closed`] connects
    /// there again after the session is lost.
    pub fn connect_postgres(url: &str) -> Result<Conn, Error> {
        Ok(Conn {
            inner: Inner::Postgres(Box::new(RefCell::new(Pg::connect(url)?))),
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
        if !pg.closed() {
            return Ok(false);
        }
        *pg = Pg::connect(&pg.url.clone())?;
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
            Inner::Postgres(pg) => pg.borrow().changed,
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
                let Out::Changed(n) = pg.run(Op::Execute(&stmt, &pg_params(params)))? else {
                    unreachable!("an execute answers a count")
                };
                pg.changed += n;
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
                let list = vec![(pg.statement(sql)?, pg_params(params))];
                let writes = returns_changes(sql);
                let Out::Many(mut answers) = pg.run(Op::Queries { list, writes })? else {
                    unreachable!("a query answers rows")
                };
                let rows = answers.pop().unwrap_or_default();
                if writes {
                    pg.changed += rows.len() as u64;
                }
                drop(pg);
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(f(&pg_row(r)?)?);
                }
                Ok(out)
            }
        }
    }

    /// Every row of each of several reads (statements that do not write): on PostgreSQL in
    /// one round trip, with what was deferred.
    pub fn queries(&self, reads: &[(&str, &[Param<'_>])]) -> Result<Vec<Vec<Row>>, Error> {
        match &self.inner {
            Inner::Sqlite(_) => reads
                .iter()
                .map(|(sql, params)| self.query(sql, params))
                .collect(),
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let mut list = Vec::with_capacity(reads.len());
                for (sql, params) in reads {
                    list.push((pg.statement(sql)?, pg_params(params)));
                }
                let Out::Many(answers) = pg.run(Op::Queries {
                    list,
                    writes: false,
                })?
                else {
                    unreachable!("queries answer rows")
                };
                answers
                    .iter()
                    .map(|rows| rows.iter().map(pg_row).collect())
                    .collect()
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
            Inner::Postgres(pg) => {
                pg.borrow_mut().run(Op::Batch(sql))?;
            }
        }
        Ok(())
    }

    /// Runs one statement whose outcome the caller does not need now: SQLite runs it at
    /// once; PostgreSQL sends it with the next round trip (the next statement that answers,
    /// or [`Conn::flush`]), whose error it then is. Order is kept.
    pub fn defer(&self, sql: &str, params: &[Param<'_>]) -> Result<(), Error> {
        match &self.inner {
            Inner::Sqlite(_) => self.execute(sql, params).map(drop),
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = pg.statement(sql)?;
                let owned = params.iter().map(OwnedParam::from).collect();
                pg.deferred.push(Deferred::Execute(stmt, owned));
                Ok(())
            }
        }
    }

    /// Inserts rows into `into` (`table (columns)`), deferred as [`Conn::defer`] is, in
    /// order. `params` holds the rows one after the other, `width` values each.
    ///
    /// PostgreSQL: `INSERT INTO {into} VALUES (..), (..), ...`, [`INSERT_CHUNK`] rows to a
    /// statement (so the statements a connection prepares for this stay few), which saves
    /// the server a statement per row. SQLite: one cached single-row `INSERT` per row. A
    /// statement there costs no round trip, and a statement that writes several rows must
    /// keep a statement journal (every page it changes is copied first, so that a failing
    /// row can undo the rows before it), which cost the writer a tenth of its time.
    pub fn defer_insert(
        &self,
        into: &str,
        width: usize,
        params: &[Param<'_>],
    ) -> Result<(), Error> {
        let per_statement = match self.inner {
            Inner::Sqlite(_) => 1,
            Inner::Postgres(_) => INSERT_CHUNK,
        };
        let mut sql = String::new();
        for rows in params.chunks(width * per_statement) {
            let count = rows.len() / width;
            if count != per_statement || sql.is_empty() {
                sql = multi_row_insert(into, width, count);
            }
            self.defer(&sql, rows)?;
        }
        Ok(())
    }

    /// [`Conn::defer`] for statements without parameters (transaction control).
    pub fn defer_batch(&self, sql: &str) -> Result<(), Error> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(pg) => {
                pg.borrow_mut()
                    .deferred
                    .push(Deferred::Batch(sql.to_owned()));
                Ok(())
            }
        }
    }

    /// The writer starts a request of its group: what the request then does is kept or
    /// dropped as a whole by [`Conn::end_request`]. SQLite sets a savepoint. PostgreSQL sets
    /// one only when the request makes a round trip before it ends (a query): a request that
    /// only defers statements is dropped by forgetting them, and costs no round trip.
    pub fn begin_request(&self) -> Result<(), Error> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(SAVEPOINT)?),
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let start = pg.deferred.len();
                pg.request = Some(Request {
                    start,
                    savepoint: false,
                });
                Ok(())
            }
        }
    }

    /// Ends the request [`Conn::begin_request`] started: `keep` releases what it did into the
    /// transaction; otherwise it is rolled back (PostgreSQL: what it deferred since its last
    /// round trip is dropped unsent). PostgreSQL sends nothing now.
    pub fn end_request(&self, keep: bool) -> Result<(), Error> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(if keep {
                "RELEASE request"
            } else {
                "ROLLBACK TO request; RELEASE request"
            })?),
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let Some(request) = pg.request.take() else {
                    return Ok(());
                };
                let end = match (keep, request.savepoint) {
                    (true, true) => "RELEASE request",
                    (true, false) => return Ok(()),
                    (false, true) => {
                        pg.deferred.clear();
                        "ROLLBACK TO request; RELEASE request"
                    }
                    (false, false) => {
                        pg.deferred.truncate(request.start);
                        return Ok(());
                    }
                };
                pg.deferred.push(Deferred::Batch(end.to_owned()));
                Ok(())
            }
        }
    }

    /// The first row of a query, then statements without parameters (`COMMIT`): on
    /// PostgreSQL in one round trip with every deferred statement. The first error wins; when
    /// the query or a deferred statement failed, `then` did not take effect.
    pub fn query_one_then(
        &self,
        sql: &str,
        params: &[Param<'_>],
        then: &str,
    ) -> Result<Row, Error> {
        match &self.inner {
            Inner::Sqlite(c) => {
                let row = self.query_one(sql, params)?;
                c.execute_batch(then)?;
                Ok(row)
            }
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = pg.statement(sql)?;
                let Out::Rows(rows) = pg.run(Op::QueryThen(&stmt, &pg_params(params), then))?
                else {
                    unreachable!("a query answers rows")
                };
                drop(pg);
                pg_row(rows.first().ok_or(Error::NoRows)?)
            }
        }
    }

    /// Sends every deferred statement now; the first one's error, if any failed.
    pub fn flush(&self) -> Result<(), Error> {
        match &self.inner {
            Inner::Sqlite(_) => Ok(()),
            Inner::Postgres(pg) => pg.borrow_mut().run(Op::Flush).map(drop),
        }
    }

    /// Whether the connection to the database is gone (PostgreSQL; SQLite never is).
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(_) => false,
            Inner::Postgres(pg) => pg.borrow().client.is_closed(),
        }
    }
}

/// Rows one statement of [`Conn::defer_insert`] carries at most.
pub const INSERT_CHUNK: usize = 64;

/// `INSERT INTO {into} VALUES (?1, ?2), (?3, ?4)` for `rows` rows of `width` values.
fn multi_row_insert(into: &str, width: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {into} VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..width {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
            sql.push_str(&(row * width + column + 1).to_string());
        }
        sql.push(')');
    }
    sql
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
    fn a_multi_row_insert_keeps_every_row_in_order_across_chunks() {
        assert_eq!(
            multi_row_insert("t (a, b)", 2, 2),
            "INSERT INTO t (a, b) VALUES (?1, ?2), (?3, ?4)"
        );
        let conn = Conn::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        conn.batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
            .unwrap();
        let rows = INSERT_CHUNK * 2 + 3;
        let texts: Vec<String> = (0..rows).map(|i| format!("row {i}")).collect();
        let params: Vec<Param<'_>> = texts
            .iter()
            .enumerate()
            .flat_map(|(i, t)| [Param::from(i), Param::from(t)])
            .collect();
        conn.defer_insert("t (a, b)", 2, &params).unwrap();
        let got: Vec<(i64, String)> = conn
            .query_map("SELECT a, b FROM t ORDER BY id", params![], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let want: Vec<(i64, String)> = (0..rows).map(|i| (i as i64, texts[i].clone())).collect();
        assert_eq!(got, want);
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
