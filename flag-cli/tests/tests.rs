//! The `flag` binary run as a process against the real server, started in-process on
//! 127.0.0.1:0 with a temporary database; and offline `flag eval` over fixture files.

mod cli;
