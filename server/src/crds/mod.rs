//! CustomResourceDefinitions: a CRD's own rules (names, versions, schemas; `rules`) and the
//! resources the CRDs of each workspace define, cached and served (`served`).

pub mod rules;
pub mod served;
