//! Identity through real gRPC, on every configured backend: the directory (users, groups,
//! memberships, grants, product access), its tenant lifecycle as the orchestrator drives
//! it, and the contact escrow.

mod admission;
mod common;
mod directory;
mod escrow;
mod lifecycle;
