//! Criterion benches and the roofline probe live here.
