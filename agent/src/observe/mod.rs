//! observe: answers questions about the machine and returns plain data
//! ([`crate::model`]). It never decides anything.
pub mod apps;
pub mod camera;
pub mod inventory;
pub mod persistence;
pub mod probe;
pub mod signing;
pub mod tcc;
