//! Vigil's side of TensorBoard logging: only rank 0 writes, and the training tags
//! stay in step with the book and `scripts/check_tensorboard.py`. The writer and
//! reader themselves are tested in the `vigil-tensorboard` crate.

use vigil_trainer::logging::proto::event::What;
use vigil_trainer::logging::{event_files, read_event_file, tags};

#[test]
fn only_rank_zero_writes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = vigil_config::LoggingSection::default();
    let mut other = vigil_trainer::logging::open_logger(&config, 1, dir.path(), 0)?;
    other.scalar(tags::TRAIN_LOSS, 1, 1.0)?;
    drop(other);
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
    let tb = dir.path().join("tb");
    let mut zero = vigil_trainer::logging::open_logger(&config, 0, &tb, 5)?;
    zero.scalar(tags::TRAIN_LOSS, 5, 1.0)?;
    drop(zero);
    let files = event_files(&tb)?;
    assert_eq!(files.len(), 1);
    let events = read_event_file(&files[0])?;
    assert!(matches!(&events[1].what, Some(What::SessionLog(_))));
    assert_eq!(events[1].step, 5);
    Ok(())
}

#[test]
fn checker_script_and_the_book_list_the_training_tags() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let script = std::fs::read_to_string(root.join("scripts/check_tensorboard.py"))?;
    let page = "docs/src/reference/tensorboard.md";
    let book = std::fs::read_to_string(root.join(page))?;
    for tag in tags::TRAIN_SCALARS.iter().chain([&tags::CONFIG_TEXT]) {
        assert!(
            script.contains(&format!("\"{tag}\"")),
            "scripts/check_tensorboard.py does not expect {tag}"
        );
        assert!(
            book.contains(&format!("`{tag}`")),
            "the book's TensorBoard page {page} does not list {tag}"
        );
    }
    Ok(())
}
