//! How store-core's types, which know nothing of serde (store-core stays free of it), appear in
//! the doctor's JSON: names as the reports print them (`WalUnsupported`, `salvage-wal`), times
//! in RFC 3339, and small derived shapes for the structured ones.

use std::fmt::Display;
use std::path::Path;
use std::time::SystemTime;

use serde::{Serialize, Serializer};
use store_core::pending::InterruptedRecovery;
use store_core::time::UtcTime;
use store_core::{FileContent, Filesystem, Risk};

/// A value as its `Display` text.
pub(crate) fn display<T: Display, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Each value as its `Display` text.
pub(crate) fn display_each<T: Display, S: Serializer>(
    values: &[T],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(values.iter().map(ToString::to_string))
}

/// The value as its `Display` text, or `null`.
pub(crate) fn optional_display<T: Display, S: Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    value
        .as_ref()
        .map(ToString::to_string)
        .serialize(serializer)
}

/// `2026-11-21T21:51:03Z`, or `null`.
pub(crate) fn optional_time<S: Serializer>(
    time: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    time.map(rfc3339).serialize(serializer)
}

fn rfc3339(time: SystemTime) -> String {
    UtcTime::from_system_time(time).rfc3339()
}

/// A value, or `{"error": why}` where it could not be had.
#[derive(Serialize)]
#[serde(untagged)]
enum ValueOrError<'a, T> {
    Value(&'a T),
    Error { error: &'a str },
}

impl<'a, T> From<&'a Result<T, String>> for ValueOrError<'a, T> {
    fn from(result: &'a Result<T, String>) -> Self {
        match result {
            Ok(value) => ValueOrError::Value(value),
            Err(error) => ValueOrError::Error { error },
        }
    }
}

/// The value, or `{"error": why}`.
pub(crate) fn value_or_error<T: Serialize, S: Serializer>(
    result: &Result<T, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    ValueOrError::from(result).serialize(serializer)
}

#[derive(Serialize)]
struct FilesystemFacts<'a> {
    kind: String,
    type_name: &'a str,
    mount_point: Option<&'a Path>,
    /// The FUSE client of a network share (`sshfs`), or `null`.
    share_client: Option<&'static str>,
    /// `same-kernel`, `network-share` or `cross-vm`.
    machine_boundary: &'static str,
    /// `this-machine`, `server-wide`, `this-client-only` or `unknown`.
    lock_scope: &'static str,
}

/// `{"kind": "nfs", "type_name": "nfs4", "mount_point": "/home", "share_client": null,
/// "machine_boundary": "network-share", "lock_scope": "server-wide"}`, or `{"error": why}`.
pub(crate) fn filesystem<S: Serializer>(
    filesystem: &Result<Filesystem, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let facts = filesystem
        .as_ref()
        .map(|filesystem| FilesystemFacts {
            kind: filesystem.kind.to_string(),
            type_name: &filesystem.type_name,
            mount_point: filesystem.mount_point.as_deref(),
            share_client: filesystem.kind.share_client().map(|client| client.as_str()),
            machine_boundary: filesystem.machine_boundary().as_str(),
            lock_scope: filesystem.lock_scope.as_str(),
        })
        .map_err(Clone::clone);
    value_or_error(&facts, serializer)
}

#[derive(Serialize)]
#[serde(tag = "risk", rename_all = "kebab-case")]
enum RiskFacts {
    WalAcrossMachineBoundary {
        machine_boundary: &'static str,
        lock_scope: &'static str,
        why: String,
    },
    /// A risk this build does not know.
    Unknown { why: String },
}

/// `[{"risk": "wal-across-machine-boundary", "machine_boundary": "network-share",
/// "lock_scope": "this-client-only", "why": "..."}]`.
pub(crate) fn risks<S: Serializer>(risks: &[Risk], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(risks.iter().map(|risk| match *risk {
        Risk::WalAcrossMachineBoundary {
            boundary,
            lock_scope,
        } => RiskFacts::WalAcrossMachineBoundary {
            machine_boundary: boundary.as_str(),
            lock_scope: lock_scope.as_str(),
            why: risk.to_string(),
        },
        _ => RiskFacts::Unknown {
            why: risk.to_string(),
        },
    }))
}

/// `sqlite-wal`, `sqlite-rollback`, `duckdb`, `missing`, `empty`, ...
pub(crate) fn content<S: Serializer>(
    content: &FileContent,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(match content {
        FileContent::Missing => "missing",
        FileContent::Directory => "directory",
        FileContent::Special => "special",
        FileContent::Empty => "empty",
        FileContent::Sqlite { wal: true } => "sqlite-wal",
        FileContent::Sqlite { wal: false } => "sqlite-rollback",
        FileContent::Duckdb => "duckdb",
        FileContent::Unrecognized => "unrecognized",
        _ => "unknown",
    })
}

#[derive(Serialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
enum PendingRecord<'a> {
    Recorded {
        step: String,
        class: String,
        cause: &'a str,
        lost: String,
        reason: &'a str,
        started_at: String,
    },
    Unreadable {
        reason: &'a str,
    },
    /// A kind of record this build does not know.
    Unknown,
}

/// `{"record": "recorded", "step": "restore-snapshot", ...}`, or `null`.
pub(crate) fn interrupted_recovery<S: Serializer>(
    interrupted: &Option<InterruptedRecovery>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let record = interrupted.as_ref().map(|interrupted| match interrupted {
        InterruptedRecovery::Recorded(record) => PendingRecord::Recorded {
            step: record.step.to_string(),
            class: record.class.to_string(),
            cause: &record.cause,
            lost: record.lost.to_string(),
            reason: &record.reason,
            started_at: rfc3339(record.started_at),
        },
        InterruptedRecovery::Unreadable { reason } => PendingRecord::Unreadable { reason },
        _ => PendingRecord::Unknown,
    });
    record.serialize(serializer)
}
