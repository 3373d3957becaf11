//! Libraries programs load with `dlopen` rather than `DT_NEEDED`, which no ELF header reveals: the documented
//! default list for graphical programs and games, and the user's additions.
//!
//! A program is treated as graphical when it (or a bundled library) links against one of [`TRIGGERS`]; then the
//! [`GRAPHICAL`] sonames are added to its needs as optional ones (a soname no source provides is reported, not
//! fatal). Users extend the list with `--dlopen SONAME` or `FHSKIT_DLOPEN=a.so.1:b.so.2`; those are always added.
//! `closure` adds the sonames to the needs, `realise` resolves them like any other.

/// Linking against one of these marks a program as graphical.
pub const TRIGGERS: &[&str] = &[
    "libX11.so.6",
    "libxcb.so.1",
    "libwayland-client.so.0",
    "libSDL2-2.0.so.0",
    "libglfw.so.3",
    "libgtk-3.so.0",
    "libgdk-3.so.0",
    "libQt5Gui.so.5",
    "libQt6Gui.so.6",
    "libGL.so.1",
    "libEGL.so.1",
    "libvulkan.so.1",
];

/// What graphical programs and games commonly `dlopen`: GL/Vulkan loaders, audio, input and device discovery,
/// and the NSS modules name lookups load.
pub const GRAPHICAL: &[&str] = &[
    "libGL.so.1",
    "libGLX.so.0",
    "libEGL.so.1",
    "libvulkan.so.1",
    "libasound.so.2",
    "libpulse.so.0",
    "libudev.so.1",
    "libXcursor.so.1",
    "libXrandr.so.2",
    "libXi.so.6",
    "libxkbcommon.so.0",
    "libnss_files.so.2",
    "libnss_dns.so.2",
];

/// The environment variable with extra sonames (colon-separated).
pub const ENV: &str = "FHSKIT_DLOPEN";

/// The extra sonames for a program whose needs are `needed`: the user's (`--dlopen`, `FHSKIT_DLOPEN`) always,
/// the graphical list when a trigger is among the needs. Returns (always required, optional).
pub fn extra_sonames(needed: &[String], user: &[String]) -> (Vec<String>, Vec<String>) {
    let mut required: Vec<String> = user.to_vec();
    if let Ok(v) = std::env::var(ENV) {
        required.extend(v.split(':').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    let optional = if needed.iter().any(|n| TRIGGERS.contains(&n.as_str())) {
        GRAPHICAL
            .iter()
            .map(|s| (*s).to_owned())
            .filter(|s| !needed.contains(s) && !required.contains(s))
            .collect()
    } else {
        Vec::new()
    };
    (required, optional)
}
