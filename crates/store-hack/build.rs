// A build script, so that cargo builds the build-dependencies that unify host features.
fn main() {}
