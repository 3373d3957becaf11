//! Libraries programs load with `dlopen` rather than `DT_NEEDED`, which no ELF header reveals: the documented
//! default list for graphical programs and games, and the user's additions.
//!
//! A program is treated as graphical when it (or a bundled library or plugin) links against one of [`TRIGGERS`];
//! then each of the [`GRAPHICAL`] sonames, and Mesa's software rasteriser ([`DRI_DRIVER`]), is added as its own
//! optional group: one that no source can provide completely is left out with a line saying so, never fatal.
//! Users extend the list with `--dlopen SONAME` or `FHSKIT_DLOPEN=a.so.1:b.so.2`; those are required.
//! `analysis` adds them to the needs, `pkgs::closure` resolves them like any other.

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

/// What graphical programs and games commonly `dlopen`: the GL/EGL/Vulkan loaders and Mesa's vendor libraries
/// behind them, audio, input and device discovery, and the NSS modules name lookups load.
pub const GRAPHICAL: &[&str] = &[
    "libGL.so.1",
    "libGLX.so.0",
    "libGLX_mesa.so.0",
    "libEGL.so.1",
    "libEGL_mesa.so.0",
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

/// Mesa's software rasteriser, which libGLX_mesa/libEGL_mesa open by path from the DRI driver directory (relative to
/// `/`, after the multiarch triplet's directory).
pub const DRI_DRIVER: &str = "dri/swrast_dri.so";

/// The environment variable with extra sonames (colon-separated).
pub const ENV: &str = "FHSKIT_DLOPEN";

/// The user's extra sonames (`--dlopen`, `FHSKIT_DLOPEN`): always required.
pub fn required(user: &[String]) -> Vec<String> {
    let mut required: Vec<String> = user.to_vec();
    if let Ok(v) = std::env::var(ENV) {
        required.extend(v.split(':').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    required
}

/// Whether something linking `needed` is graphical.
pub fn is_graphical<'a>(mut needed: impl Iterator<Item = &'a str>) -> bool {
    needed.any(|n| TRIGGERS.contains(&n))
}
