//! Usage: what the model calls cost. Which of an agent's files may be read (`agent_dirs`), reading
//! session logs, one reader per agent behind one seam (`logs`), each response counted once, the
//! accountant thread that follows live sessions' logs, and the price table.

pub(crate) mod accountant;
pub(crate) mod agent_dirs;
pub mod logs;
pub mod pricing;
