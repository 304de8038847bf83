//! Scalar FP32 reference twin.
