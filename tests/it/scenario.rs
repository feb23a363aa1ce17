//! One application scenario, written once against [`store::Open`] and run for each engine: create
//! and migrate, write, reopen, then the bad inputs an application meets. Only the SQL runner below
//! knows which engine it talks to. Needs both engines (`--all-features`).

use std::path::Path;

use store::{Engine, FailureClass, Migration, Migrations, Open};
use store_testkit::logs::{at_level, capture};
use store_testkit::snapshot::assert_unchanged;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The little an application needs from a connection in this scenario.
trait Sql {
    fn run(&self, sql: &str) -> Result<(), Box<dyn std::error::Error>>;
    fn count(&self, sql: &str) -> Result<i64, Box<dyn std::error::Error>>;
}

impl Sql for store::sqlite::rusqlite::Connection {
    fn run(&self, sql: &str) -> Result<(), Box<dyn std::error::Error>> {
        Ok(self.execute_batch(sql)?)
    }
    fn count(&self, sql: &str) -> Result<i64, Box<dyn std::error::Error>> {
        Ok(self.query_row(sql, [], |row| row.get(0))?)
    }
}

impl Sql for store::duckdb::DuckDbConnection {
    fn run(&self, sql: &str) -> Result<(), Box<dyn std::error::Error>> {
        Ok(self.execute_batch(sql)?)
    }
    fn count(&self, sql: &str) -> Result<i64, Box<dyn std::error::Error>> {
        Ok(self.query_row(sql, [], |row| row.get(0))?)
    }
}

fn migrations() -> Migrations {
    Migrations::new(vec![
        Migration::new(
            1,
            "notes",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, text VARCHAR NOT NULL)",
        ),
        Migration::new(2, "tags", "CREATE TABLE tags (note INTEGER, tag VARCHAR)"),
    ])
    .expect("valid migrations")
}

/// The scenario. `options` makes the engine's options for a path, with [`migrations`];
/// `other_engine_file` writes a database of the other engine at a path.
fn scenario<O>(
    options: impl Fn(&Path) -> O,
    other_engine_file: impl Fn(&Path) -> Result<(), Box<dyn std::error::Error>>,
) -> TestResult
where
    O: Open,
    O::Connection: Sql,
{
    let home = tempfile::tempdir()?;
    let path = home.path().join("app.db");

    // First start: created and migrated, quietly.
    let (opened, events) = capture(|| options(&path).open_connection());
    let (connection, report) = opened?;
    assert_eq!(report.engine, O::ENGINE);
    assert!(report.created, "{report}");
    assert_eq!(report.schema_version, 2);
    assert_eq!(report.migrations_applied.len(), 2, "{report}");
    assert!(!report.fell_back() && !report.recovered(), "{report}");
    assert!(
        at_level(&events, tracing::Level::WARN).is_empty(),
        "a happy open warned: {events:?}"
    );
    connection.run("INSERT INTO notes (id, text) VALUES (1, 'one'), (2, 'two')")?;
    drop(connection);

    // Second start: nothing to do, everything kept.
    let (connection, report) = options(&path).open_connection()?;
    assert!(!report.created, "{report}");
    assert!(report.migrations_applied.is_empty(), "{report}");
    assert_eq!(report.schema_version, 2);
    assert_eq!(connection.count("SELECT count(*) FROM notes")?, 2);
    drop(connection);

    // Bad inputs: a typed error each, and not a byte changed.
    let other = home.path().join("other.db");
    other_engine_file(&other)?;
    let empty = home.path().join("empty.db");
    std::fs::write(&empty, "")?;
    let text = home.path().join("notes.txt");
    std::fs::write(&text, "plain text that is not a database header")?;
    let cases: [(&Path, FailureClass); 4] = [
        (home.path(), FailureClass::NotAFile),
        (&other, FailureClass::NotADatabase),
        (&empty, FailureClass::NotADatabase),
        (&text, FailureClass::NotADatabase),
    ];
    for (bad, class) in cases {
        let outcome = assert_unchanged(home.path(), || options(bad).open_connection());
        match outcome {
            Ok(_) => panic!("{} opened {}", O::ENGINE, bad.display()),
            Err(error) => {
                assert_eq!(
                    store::Classify::class(&error),
                    class,
                    "{}: {error}",
                    bad.display()
                );
                let message = store::cause_chain(&error);
                assert!(
                    message.contains(&bad.display().to_string()),
                    "the error names the path: {message}"
                );
            }
        }
    }
    Ok(())
}

fn sqlite_file(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let connection = store::sqlite::rusqlite::Connection::open(path)?;
    connection.execute_batch("CREATE TABLE t (x INTEGER)")?;
    Ok(())
}

fn duckdb_file(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let connection = store::duckdb::duckdb::Connection::open(path)?;
    connection.execute_batch("CREATE TABLE t (x INTEGER)")?;
    Ok(())
}

#[test]
fn the_scenario_through_sqlite() -> TestResult {
    assert_eq!(store::sqlite::SqliteOptions::ENGINE, Engine::Sqlite);
    scenario(
        |path| store::sqlite::SqliteOptions::new(path).migrations(migrations()),
        duckdb_file,
    )
}

#[test]
fn the_scenario_through_duckdb() -> TestResult {
    assert_eq!(store::duckdb::DuckDbOptions::ENGINE, Engine::Duckdb);
    scenario(
        |path| store::duckdb::DuckDbOptions::new(path).migrations(migrations()),
        sqlite_file,
    )
}
