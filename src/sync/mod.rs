//! The staged sync pipeline (DESIGN.md §9). This issue defines the stage
//! identities whose checkpoints the store persists; the stages themselves
//! come with the sync engine.

mod stage_id;

pub use stage_id::StageId;
