//! What every open does around its engine's work, for both engines: a tracing span, the elapsed
//! time in the report, and on failure the process's last open error
//! ([`crate::unavailable_message`]) and one warning per label and failure class.

use std::path::Path;
use std::time::Instant;

use crate::connect::Classify;
use crate::diagnostics::{OpenFailure, WarnOnce, cause_chain, record_open_failure};
use crate::report::{Engine, OpenReport};

/// An event at `$level` on the engine's tracing target (`store::sqlite`, `store::duckdb`):
/// tracing needs the target as a literal.
macro_rules! engine_event {
    ($engine:expr, $level:ident, $($rest:tt)*) => {
        match $engine {
            Engine::Sqlite => tracing::$level!(target: "store::sqlite", $($rest)*),
            _ => tracing::$level!(target: "store::duckdb", $($rest)*),
        }
    };
}

/// Runs `body`, an engine's open of `path` under `label`, inside its span, with a fresh report;
/// fills in the elapsed time; records a failure as the process's last open error (with the
/// filesystem the body detected, if it got that far) and warns once per label and class.
pub fn reporting<T, E>(
    engine: Engine,
    path: &Path,
    label: String,
    body: impl FnOnce(&mut OpenReport) -> Result<T, E>,
) -> Result<(T, OpenReport), E>
where
    E: Classify + std::error::Error,
{
    let started = Instant::now();
    let span = match engine {
        Engine::Sqlite => {
            tracing::info_span!(target: "store::sqlite", "open", engine = %engine, path = %path.display(), label = %label)
        }
        _ => {
            tracing::info_span!(target: "store::duckdb", "open", engine = %engine, path = %path.display(), label = %label)
        }
    };
    let _entered = span.enter();
    let mut report = OpenReport::new(engine, path, label.clone());
    match body(&mut report) {
        Ok(opened) => {
            report.elapsed = started.elapsed();
            engine_event!(engine, debug, report = %report, "opened");
            Ok((opened, report))
        }
        Err(error) => {
            let class = error.class();
            let cause = cause_chain(&error);
            record_open_failure(
                OpenFailure::new(engine, path, &label, class, &cause)
                    .on_filesystem(report.filesystem.clone()),
            );
            if WarnOnce::global().first(&label, &format!("open-failed-{class}")) {
                engine_event!(
                    engine,
                    warn,
                    label = %label,
                    path = %path.display(),
                    class = %class,
                    "{label}: database not available: {cause}"
                );
            }
            Err(error)
        }
    }
}

/// Records that `migration` was applied by this open: in the report, and at INFO on the
/// engine's tracing target.
pub fn migration_applied(engine: Engine, report: &mut OpenReport, migration: &crate::Migration) {
    engine_event!(
        engine,
        info,
        version = migration.version,
        name = %migration.name,
        "migration applied"
    );
    report
        .migrations_applied
        .push(crate::report::AppliedMigration {
            version: migration.version,
            name: migration.name.to_string(),
        });
}

/// Why [`create_atomically`] created nothing: the two steps it takes.
#[derive(Debug)]
pub enum CreateFailure<E> {
    /// The engine could not initialise the database under its temporary name.
    Initialise(E),
    /// The initialised file could not be moved into place.
    Place(std::io::Error),
}

/// Creates a new database so that `path` is either absent or a whole, initialised database of
/// `engine` at every instant: `initialise` makes it under a temporary name of our own beside
/// `path` (with its `sidecars`), and it is renamed into place without replacing anything. If
/// another process created the database meanwhile, theirs is kept and ours removed.
pub fn create_atomically<E>(
    path: &Path,
    engine: Engine,
    sidecars: &[&str],
    initialise: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), CreateFailure<E>> {
    let temporary = crate::files::private_sibling(path, "creating");
    let remove_temporary = || {
        // Ours alone, never the user's: a name no one else uses, made a moment ago.
        for suffix in std::iter::once(&"").chain(sidecars) {
            let _ = std::fs::remove_file(crate::files::sibling(&temporary, suffix));
        }
    };
    if let Err(error) = initialise(&temporary) {
        remove_temporary();
        return Err(CreateFailure::Initialise(error));
    }
    debug_assert_eq!(
        crate::FileContent::inspect(&temporary)
            .ok()
            .and_then(|content| content.engine()),
        Some(engine),
        "the initialised file is a database of its engine"
    );
    match crate::files::place_new_file(&temporary, path) {
        Ok(crate::files::Placed::Placed) => {
            engine_event!(engine, debug, path = %path.display(), "created");
            Ok(())
        }
        Ok(_) => {
            remove_temporary();
            engine_event!(
                engine,
                debug,
                path = %path.display(),
                "another process created the database first; using theirs"
            );
            Ok(())
        }
        Err(source) => {
            remove_temporary();
            Err(CreateFailure::Place(source))
        }
    }
}

/// Claims the database's ownership by this client before the engine opens it, where the
/// filesystem the report detected can be reached by another machine (a network share, a VM's
/// shared folder): a second machine then gets a typed error naming the owner at once, instead of
/// writing behind the first's back. Elsewhere nothing is claimed. The claim (created, joined,
/// or taken over from a crashed owner of this machine) goes into the report; the returned
/// [`Ownership`](crate::ownership::Ownership) must live as long as the engine's files are open.
/// A client that comes to own the database (created or taken over, not joined) first drops its
/// cached pages of the database and of the files named by `sidecar_suffixes` beside it.
#[cfg(target_os = "linux")]
pub fn claim_ownership(
    path: &Path,
    sidecar_suffixes: &[&str],
    report: &mut OpenReport,
) -> Result<Option<crate::ownership::Ownership>, crate::ownership::OwnershipError> {
    let crosses = report
        .filesystem
        .as_ref()
        .is_some_and(|filesystem| filesystem.machine_boundary().is_crossed());
    if !crosses {
        return Ok(None);
    }
    let ownership = crate::ownership::Ownership::claim(path)?;
    if let crate::ownership::Claim::TookOverCrashed { previous } = ownership.claimed() {
        tracing::warn!(
            target: "store::recovery",
            path = %path.display(),
            "took over the ownership of a crashed owner on this machine: {previous}"
        );
    }
    if !matches!(ownership.claimed(), crate::ownership::Claim::Joined { .. }) {
        forget_cached_pages(path);
        for suffix in sidecar_suffixes {
            forget_cached_pages(&crate::files::sibling(path, suffix));
        }
    }
    report.ownership = Some(ownership.claimed().clone());
    Ok(Some(ownership))
}

/// The failure class of an ownership error: another owner is a lock held elsewhere; a record
/// that changed under the claim is busy; the machine's refusals are classed as their `io::Error`.
#[cfg(target_os = "linux")]
pub fn ownership_failure_class(
    error: &crate::ownership::OwnershipError,
) -> crate::failure::FailureClass {
    use crate::failure::FailureClass;
    use crate::ownership::OwnershipError;
    match error {
        OwnershipError::OwnedElsewhere { .. }
        | OwnershipError::OwnerAlive { .. }
        | OwnershipError::OwnerOnAnotherMachine { .. } => FailureClass::Locked,
        OwnershipError::Busy { .. } => FailureClass::Busy,
        OwnershipError::Unreadable { source, .. } | OwnershipError::Io { source, .. } => {
            FailureClass::from_io_error(source)
        }
        _ => FailureClass::Other,
    }
}

/// Drops this client's cached pages of a database it has just come to own: another client may
/// have written it since this one last read it, and a share's client may serve those pages
/// from its cache (measured on GlusterFS: a machine that had read the database before saw none
/// of another machine's later commits, and wrote over them).
#[cfg(target_os = "linux")]
fn forget_cached_pages(path: &Path) {
    use std::os::fd::AsRawFd as _;
    if let Ok(file) = std::fs::File::open(path) {
        // SAFETY: a valid descriptor; advice only, no memory is touched.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}
