//! pfctl(8) command lines and their errors.
