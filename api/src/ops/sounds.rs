//! WAV names given by clients (TCP 4011 PLAYWAV, stored sounds) resolved inside
//! the sounds directory and nowhere else: relative names of plain components
//! only, and the resolved file (after symbolic links) must still lie inside the
//! directory. A link that leads out of it is "not found", like a missing file,
//! so a client learns nothing about what lies outside.

use std::path::{Component, Path, PathBuf};

use super::{Kind, OpsError};

/// The parameter name bad WAV names are reported under.
const FIELD: &str = "wav-file";

/// The name as a relative path of plain components (`a.wav`, `prompts/a.wav`);
/// absolute paths, `.`, `..`, backslashes and NULs are refused.
pub fn relative_wav_path(name: &str) -> Result<PathBuf, OpsError> {
    let refused = OpsError::invalid(FIELD, "not a plain relative name");
    if name.is_empty() || name.contains(['\\', '\0']) {
        return Err(refused);
    }
    let path = Path::new(name);
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(refused);
    }
    Ok(path.to_path_buf())
}

/// The file `name` denotes inside `sounds_dir`, as an absolute path. A name
/// without an extension also finds `<name>.wav`.
pub async fn resolve_wav(sounds_dir: &Path, name: &str) -> Result<PathBuf, OpsError> {
    resolve_wav_named(sounds_dir, name).await.map(|(path, _)| path)
}

/// [`resolve_wav`], and the name the client gave as it matched: with `.wav`
/// added where the client left it off (`hello` is `hello.wav`), directories kept.
pub async fn resolve_wav_named(
    sounds_dir: &Path,
    name: &str,
) -> Result<(PathBuf, String), OpsError> {
    let relative = relative_wav_path(name)?;
    let Ok(root) = tokio::fs::canonicalize(sounds_dir).await else {
        tracing::warn!(dir = %sounds_dir.display(), "sounds directory missing");
        return Err(OpsError::NotFound(Kind::File));
    };
    let mut candidates = vec![relative.clone()];
    if relative.extension().is_none() {
        candidates.push(relative.with_extension("wav"));
    }
    for candidate in candidates {
        let Ok(path) = tokio::fs::canonicalize(root.join(&candidate)).await else { continue };
        let is_file = tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file());
        if is_file && path.starts_with(&root) {
            return Ok((path, candidate.to_string_lossy().into_owned()));
        }
        if is_file {
            tracing::info!(name, "a sound name leads out of the sounds directory: refused");
        }
    }
    Err(OpsError::NotFound(Kind::File))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_pass() {
        for ok in ["a.wav", "prompts/a.wav", "x", "with space.wav", "..hidden.wav"] {
            assert!(relative_wav_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../a.wav", "a/../../b.wav", "./a.wav", "a\\..\\b", "a\0b"] {
            assert!(
                matches!(relative_wav_path(bad), Err(OpsError::Invalid { field: "wav-file", .. })),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn files_resolve_inside_the_directory_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sounds = dir.path().join("sounds");
        std::fs::create_dir_all(sounds.join("sub")).expect("mkdir");
        std::fs::write(sounds.join("hello.wav"), b"RIFF").expect("write");
        std::fs::write(sounds.join("sub/b.wav"), b"RIFF").expect("write");
        std::fs::write(dir.path().join("secret.wav"), b"RIFF").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret.wav"), sounds.join("link.wav"))
            .expect("symlink");

        let root = sounds.canonicalize().expect("canonical");
        assert_eq!(resolve_wav(&sounds, "hello.wav").await, Ok(root.join("hello.wav")));
        assert_eq!(resolve_wav(&sounds, "hello").await, Ok(root.join("hello.wav")));
        assert_eq!(resolve_wav(&sounds, "sub/b.wav").await, Ok(root.join("sub/b.wav")));
        assert_eq!(
            resolve_wav_named(&sounds, "sub/b").await,
            Ok((root.join("sub/b.wav"), "sub/b.wav".to_owned()))
        );
        assert_eq!(resolve_wav(&sounds, "missing.wav").await, Err(OpsError::NotFound(Kind::File)));
        assert_eq!(resolve_wav(&sounds, "sub").await, Err(OpsError::NotFound(Kind::File)));
        assert_eq!(resolve_wav(&sounds, "link.wav").await, Err(OpsError::NotFound(Kind::File)));
        assert!(matches!(
            resolve_wav(&sounds, "../secret.wav").await,
            Err(OpsError::Invalid { field: "wav-file", .. })
        ));
    }
}
