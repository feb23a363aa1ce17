//! Running a test, or a role of a test, in a fresh process of the same test binary.
//!
//! Faults that are process-global (syscall hooks, SQLite's test control, mount namespaces) or that
//! kill the process must not touch the other tests that `cargo test` runs on threads of the same
//! process. [`isolated!`](crate::isolated) re-executes the test binary with only the current test
//! selected and an environment variable that tells the copy it is the child; the parent waits and
//! fails with the child's output if the child failed.
//!
//! ```no_run
//! #[test]
//! fn falls_back_without_shared_memory() {
//!     store_testkit::isolated!(falls_back_without_shared_memory, {
//!         // Runs in a child process: install process-global faults freely here.
//!     });
//! }
//! ```

use std::ffi::OsString;
use std::process::{Child, Command, Output, Stdio};

/// Set in a child to the libtest name of the test it runs.
pub const CHILD_ENV: &str = "STORE_TESTKIT_CHILD";

/// Set in a child spawned by [`spawn_role`] to its role.
pub const ROLE_ENV: &str = "STORE_TESTKIT_ROLE";

/// The libtest name of a test from its full module path: the crate's own name is not part of it.
pub fn test_name(full_path: &str) -> &str {
    full_path
        .split_once("::")
        .map_or(full_path, |(_, rest)| rest)
}

/// Whether this process is the child running `full_path`.
pub fn is_child_for(full_path: &str) -> bool {
    std::env::var_os(CHILD_ENV).is_some_and(|value| value == test_name(full_path))
}

/// The role this process was spawned for by [`spawn_role`], if any.
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// A command that runs exactly the test `full_path` of the current test binary.
pub fn test_command(full_path: &str) -> Command {
    let executable = std::env::current_exe().expect("the test binary knows its own path");
    let mut command = Command::new(executable);
    command
        .args([
            test_name(full_path),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, test_name(full_path))
        .stdin(Stdio::null());
    command
}

/// Runs `body` in a child process if this is the parent, or right here if this is that child.
/// Panics in the parent, with the child's output, if the child failed.
pub fn isolate(full_path: &str, body: impl FnOnce()) {
    if is_child_for(full_path) {
        body();
        return;
    }
    let output = test_command(full_path)
        .output()
        .expect("the test binary can re-execute itself");
    assert_child_succeeded(full_path, &output);
}

/// Panics with the child's output unless it exited with success and actually ran its test.
pub fn assert_child_succeeded(full_path: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child process for {full_path} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
}

/// Spawns the test `full_path` in a child with [`ROLE_ENV`] set to `role` and the given extra
/// environment, for tests that play several processes (racing migrations, a lock holder).
pub fn spawn_role(
    full_path: &str,
    role: &str,
    environment: &[(&str, OsString)],
) -> std::io::Result<Child> {
    let mut command = test_command(full_path);
    command
        .env(ROLE_ENV, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in environment {
        command.env(key, value);
    }
    command.spawn()
}

/// Runs the block in a child process of the test binary; see the [module docs](crate::child).
/// The first argument is the enclosing test function's name.
#[macro_export]
macro_rules! isolated {
    ($test_function:ident, $body:block) => {
        $crate::child::isolate(
            concat!(module_path!(), "::", stringify!($test_function)),
            || $body,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_drop_the_crate() {
        assert_eq!(test_name("store_sqlite::tests::opens"), "tests::opens");
        assert_eq!(test_name("it::journal::falls_back"), "journal::falls_back");
        assert_eq!(test_name("lonely"), "lonely");
    }

    #[test]
    fn an_isolated_body_runs_in_another_process() {
        let ran_here = std::cell::Cell::new(false);
        crate::isolated!(an_isolated_body_runs_in_another_process, {
            ran_here.set(true);
            assert_eq!(
                std::env::var(CHILD_ENV).as_deref(),
                Ok("child::tests::an_isolated_body_runs_in_another_process")
            );
        });
        // In the parent the body did not run (the child ran it); in the child it did.
        assert_eq!(ran_here.get(), std::env::var_os(CHILD_ENV).is_some());
    }
}
