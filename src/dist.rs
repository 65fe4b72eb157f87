//! Data-parallel training across processes: which rank this process is among how many, and the
//! sums the training step and evaluation need. Ranks come from MPI (the `mpi` feature, started by
//! `mpirun` or any MPI launcher); without it, or without a launcher, there is one rank.

use std::fmt;

use crate::error::{AwdError, Result};

/// What the training step's all-reduces cost on this rank.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReduceStats {
    pub calls: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// This process's place in the job.
pub struct Dist {
    rank: usize,
    size: usize,
    stats: std::sync::Mutex<ReduceStats>,
    #[cfg(feature = "mpi")]
    world: Option<(
        mpi::environment::Universe,
        mpi::topology::SimpleCommunicator,
    )>,
}

impl fmt::Debug for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rank {} of {}", self.rank, self.size)
    }
}

impl Default for Dist {
    fn default() -> Self {
        Self::single()
    }
}

/// Whether an MPI launcher started this process (OpenMPI, MPICH/Hydra or a PMI-based one).
#[cfg(feature = "mpi")]
fn launched_by_mpi() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

impl Dist {
    /// One process alone.
    pub fn single() -> Self {
        Self {
            rank: 0,
            size: 1,
            stats: Default::default(),
            #[cfg(feature = "mpi")]
            world: None,
        }
    }

    /// The MPI job this process belongs to when an MPI launcher started it, else one process.
    pub fn from_env() -> Result<Self> {
        #[cfg(feature = "mpi")]
        if launched_by_mpi() {
            use mpi::traits::Communicator;
            let universe = mpi::initialize()
                .ok_or_else(|| AwdError::Config("MPI was already initialized".into()))?;
            let world = universe.world();
            let (rank, size) = (world.rank() as usize, world.size() as usize);
            return Ok(Self {
                rank,
                size,
                stats: Default::default(),
                world: Some((universe, world)),
            });
        }
        Ok(Self::single())
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The one rank that logs and writes files.
    pub fn is_writer(&self) -> bool {
        self.rank == 0
    }

    /// The share of `total` rows this rank takes: `(first row, rows)`; they must divide evenly.
    pub fn rows(&self, total: usize, what: &str) -> Result<(usize, usize)> {
        if !total.is_multiple_of(self.size) {
            return Err(AwdError::Config(format!(
                "{what} {total} does not divide evenly among {} ranks",
                self.size
            )));
        }
        let each = total / self.size;
        Ok((self.rank * each, each))
    }

    /// Counts one all-reduce of the training step: `bytes` sent, `seconds` spent in it.
    pub fn record(&self, bytes: usize, seconds: f64) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.calls += 1;
        s.bytes += bytes as u64;
        s.seconds += seconds;
    }

    /// The training step's all-reduces so far.
    pub fn stats(&self) -> ReduceStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `buf` summed over every rank, in place (one all-reduce).
    pub fn sum_f32(&self, buf: &mut [f32]) {
        #[cfg(feature = "mpi")]
        if let Some((_, world)) = &self.world {
            use mpi::collective::{CommunicatorCollectives, SystemOperation};
            let send = buf.to_vec();
            world.all_reduce_into(&send[..], buf, SystemOperation::sum());
        }
        let _ = buf;
    }

    /// `buf` summed over every rank, in place (one all-reduce).
    pub fn sum_f64(&self, buf: &mut [f64]) {
        #[cfg(feature = "mpi")]
        if let Some((_, world)) = &self.world {
            use mpi::collective::{CommunicatorCollectives, SystemOperation};
            let send = buf.to_vec();
            world.all_reduce_into(&send[..], buf, SystemOperation::sum());
        }
        let _ = buf;
    }
}
