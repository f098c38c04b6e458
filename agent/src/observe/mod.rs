//! observe: answers questions about the machine and returns plain data
//! ([`crate::model`]). It never decides anything.
pub mod command;
