//! Stage identities, in pipeline order.

/// One stage of the full-sync pipeline. The order of the variants is the
/// order the pipeline runs them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageId {
    /// Ask every stream its height; pick a target vouched for by enough peers.
    Heads,
    /// Fetch and verify the last block of each epoch up to the target.
    SyncEpoch,
    /// Near the tip: fetch the few missing blocks by hash.
    ShortRange,
    /// Download the cycle's block hashes.
    BlockHashes,
    /// Download the cycle's blocks.
    BlockBodies,
    /// Verify signatures, execute and commit blocks.
    States,
    /// Clear staging, update status and metrics.
    Finish,
}

impl StageId {
    /// Every stage, in pipeline order.
    pub const ALL: [StageId; 7] = [
        StageId::Heads,
        StageId::SyncEpoch,
        StageId::ShortRange,
        StageId::BlockHashes,
        StageId::BlockBodies,
        StageId::States,
        StageId::Finish,
    ];

    /// The stage's name (its key in the stage-progress table).
    pub fn name(self) -> &'static str {
        match self {
            StageId::Heads => "Heads",
            StageId::SyncEpoch => "SyncEpoch",
            StageId::ShortRange => "ShortRange",
            StageId::BlockHashes => "BlockHashes",
            StageId::BlockBodies => "BlockBodies",
            StageId::States => "States",
            StageId::Finish => "Finish",
        }
    }
}

impl std::fmt::Display for StageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
