//! The guest image `ci/guest/build.sh` builds: a kernel and an initramfs in one folder
//! (`target/guest/` by default, `VNET_GUEST_DIR` to choose another).

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The script that builds the image (in the source tree this binary was built from).
pub const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ci/guest/build.sh");

/// A built guest: kernel and initramfs.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// The kernel (`vmlinuz`).
    pub kernel: PathBuf,
    /// The initramfs (`initramfs.cpio.gz`).
    pub initrd: PathBuf,
}

impl GuestImage {
    /// The image folder for a `vnet-bench` binary at `exe` (`target/PROFILE/vnet-bench`
    /// -> `target/guest`), unless `VNET_GUEST_DIR` names one.
    pub fn default_dir(exe: &Path) -> PathBuf {
        if let Some(d) = std::env::var_os("VNET_GUEST_DIR") {
            return PathBuf::from(d);
        }
        exe.parent()
            .and_then(Path::parent)
            .map(|t| t.join("guest"))
            .unwrap_or_else(|| PathBuf::from("target/guest"))
    }

    /// The image in `dir`, if both files are there.
    ///
    /// # Errors
    /// One sentence naming the missing file and the command that builds it.
    pub fn open(dir: &Path) -> Result<GuestImage> {
        let image = GuestImage {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initramfs.cpio.gz"),
        };
        for f in [&image.kernel, &image.initrd] {
            if !f.is_file() {
                bail!(
                    "the QEMU guest image is missing ({}); build it as root with `bash ci/guest/build.sh`",
                    f.display()
                );
            }
        }
        Ok(image)
    }

    /// The image of the running binary's target folder.
    ///
    /// # Errors
    /// As [`GuestImage::open`].
    pub fn for_current_exe() -> Result<GuestImage> {
        let exe = std::env::current_exe()?;
        GuestImage::open(&GuestImage::default_dir(&exe))
    }
}
