mod common;
mod eval;
mod failures;
mod flags;
mod manage;
mod release;
mod targeting;
