//! Access tokens: which of a request's tokens counts, its validation, and
//! what it grants. (Being written.)
