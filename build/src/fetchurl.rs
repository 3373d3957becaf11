//! `builtin:fetchurl`, the builder of `<nix/fetchurl.nix>`: downloads `url` (or each of `urls` in turn; first each
//! `hashed-mirrors` entry as `<mirror>/<algo>/<base16 hash>` for flat outputs) to the output, optionally unpacking a
//! NAR (`unpack`, `.xz`-decompressed when the URL ends in `.xz`) or making it executable (`executable`). It runs in
//! the builder process, not in a sandbox (Nix runs it in a forked child without network isolation either); TLS
//! certificates are not verified, as in Nix, since the result must match the derivation's hash anyway. `file://`
//! URLs are read directly.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use store::{Derivation, nar};

/// Fetches into `dest` (which must not exist). Errors are log text, as Nix's builtin prints them.
pub(crate) fn fetch(
    drv: &Derivation,
    dest: &Path,
    mirrors: &[String],
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let env = &drv.env;
    if !drv.is_fixed_output() && env.get("__impure").is_none_or(|v| v != "1") {
        return Err("'builtin:fetchurl' must be a fixed-output or impure derivation".into());
    }
    if !drv.outputs.contains_key("out") {
        return Err("'builtin:fetchurl' requires an 'out' output".into());
    }
    let main = env.get("url").ok_or("attribute 'url' missing")?;
    let unpack = env.get("unpack").is_some_and(|v| v == "1");
    let executable = env.get("executable").is_some_and(|v| v == "1");
    let mut urls: Vec<String> = Vec::new();
    if env.get("outputHashMode").is_none_or(|m| m == "flat")
        && let Some(Ok(Some(fixed))) = drv.outputs.get("out").map(|o| o.fixed_hash("out"))
    {
        for m in mirrors {
            let m = m.trim_end_matches('/');
            urls.push(format!("{m}/{}/{}", fixed.hash.algo(), fixed.hash.to_hex()));
        }
    }
    match env.get("urls") {
        Some(list) if !list.trim().is_empty() => urls.extend(list.split_whitespace().map(str::to_owned)),
        _ => urls.push(main.clone()),
    }
    let client = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
    let mut last = String::new();
    for url in &urls {
        log(&format!("downloading '{url}'..."));
        match fetch_one(&client, url, dest, unpack && main.ends_with(".xz"), unpack) {
            Ok(()) => {
                if executable {
                    fs::set_permissions(dest, fs::Permissions::from_mode(0o755))
                        .map_err(|e| format!("making '{}' executable: {e}", dest.display()))?;
                }
                return Ok(());
            }
            Err(e) => {
                let _ = store::fsutil::remove_tree(dest);
                log(&format!("error: {e}"));
                last = e;
            }
        }
    }
    Err(last)
}

fn fetch_one(
    client: &reqwest::blocking::Client,
    url: &str,
    dest: &Path,
    xz: bool,
    unpack: bool,
) -> Result<(), String> {
    let reader: Box<dyn Read> = if let Some(path) = url.strip_prefix("file://") {
        Box::new(fs::File::open(path).map_err(|e| format!("unable to download '{url}': {e}"))?)
    } else {
        let resp = client.get(url).send().map_err(|e| format!("unable to download '{url}': {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("unable to download '{url}': HTTP error {}", resp.status().as_u16()));
        }
        Box::new(resp)
    };
    let mut reader: Box<dyn Read> = if xz { Box::new(liblzma::read::XzDecoder::new(reader)) } else { reader };
    if unpack {
        let options = nar::RestoreOptions { read_only: false, confine_symlinks: None };
        nar::restore(&mut reader, dest, &options).map_err(|e| format!("unpacking '{url}': {e}"))
    } else {
        let mut out = fs::File::create(dest).map_err(|e| format!("creating '{}': {e}", dest.display()))?;
        std::io::copy(&mut reader, &mut out).map_err(|e| format!("unable to download '{url}': {e}"))?;
        Ok(())
    }
}
