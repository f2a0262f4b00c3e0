//! The GPUs the simulated nodes carry, from real readings (`edge/fixtures/`, copied from a
//! machine with one NVIDIA H200; see their README): how a node shows them as NVIDIA GPU
//! Feature Discovery labels and the `nvidia.com/gpu` extended resource (device-plugin mode),
//! or as devices of a ResourceSlice of NVIDIA's DRA driver (DRA mode).

pub mod fixture;
pub mod labels;
