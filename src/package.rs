//! Package preflight: read an RPM and decide, before anything changes, whether
//! it is a livepatch package this tool may apply. STUB: being written.
