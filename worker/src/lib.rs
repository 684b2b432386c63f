//! The stream worker and HTTP shim (see DESIGN.md).
