//! Neural-network building blocks: the [`Module`] trait, layers and losses.

mod module;

pub use module::{visit_child, Module, StateKind};
