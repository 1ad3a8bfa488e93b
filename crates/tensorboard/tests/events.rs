//! The writer end to end: events written through the public API are read back
//! record by record with both CRCs checked and decoded as `Event`s.

use std::time::Duration;

use prost::Message;
use vigil_tensorboard::proto::event::What;
use vigil_tensorboard::proto::summary::value::Value as V;
use vigil_tensorboard::proto::{Event, HParamsPluginData, SessionStatus, h_params_plugin_data};
use vigil_tensorboard::{
    Error, FILE_VERSION, HParamsStart, MetricLogger, RunStatus, TensorBoardLogger, WriterOptions,
    event_files, read_event_file, record,
};

fn values(events: &[Event]) -> Vec<(i64, String, V)> {
    events
        .iter()
        .filter_map(|e| match &e.what {
            Some(What::Summary(s)) => Some((e.step, s)),
            _ => None,
        })
        .flat_map(|(step, s)| {
            s.value
                .iter()
                .map(move |v| (step, v.tag.clone(), v.value.clone().expect("value set")))
        })
        .collect()
}

#[test]
fn every_record_decodes_with_both_crcs_checked() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut logger = TensorBoardLogger::open(dir.path(), WriterOptions::default())?;
    logger.session_start(0)?;
    logger.hparams_start(&HParamsStart {
        group_name: "t".into(),
        hparams: [("optim.lr".to_owned(), 0.001.into())].into(),
        metrics: vec!["val/loss".into()],
        start_time_secs: 1.0,
    })?;
    logger.text("config/resolved", 0, "```yaml\na: 1\n```")?;
    logger.scalars(1, &[("train/loss", 0.5), ("train/lr", 1e-3)])?;
    logger.histogram("weights/w", 1, &[0.1, -0.2, 0.3])?;
    logger.pr_curve("pr_curve/hate", 1, &[true, false], &[0.9, 0.2], 11)?;
    logger.hparams_end(1, RunStatus::Success)?;
    let path = logger.path().to_owned();
    drop(logger);

    assert_eq!(event_files(dir.path())?, vec![path.clone()]);
    // Framing first, independently of the reader: every record's CRCs hold.
    let bytes = std::fs::read(&path)?;
    let payloads: Vec<&[u8]> = record::records(&bytes).collect::<Result<_, _>>()?;
    let events: Vec<Event> = payloads
        .iter()
        .map(|p| Event::decode(*p))
        .collect::<Result<_, _>>()?;
    assert_eq!(events, read_event_file(&path)?);

    assert_eq!(
        events[0].what,
        Some(What::FileVersion(FILE_VERSION.to_owned()))
    );
    assert!(matches!(&events[1].what,
        Some(What::SessionLog(s)) if s.status == SessionStatus::Start as i32));
    let vals = values(&events);
    let tags_seen: Vec<&str> = vals.iter().map(|v| v.1.as_str()).collect();
    assert_eq!(
        tags_seen,
        [
            "_hparams_/experiment",
            "_hparams_/session_start_info",
            "config/resolved",
            "train/loss",
            "train/lr",
            "weights/w",
            "pr_curve/hate",
            "_hparams_/session_end_info"
        ]
    );
    assert!(matches!(vals[3], (1, _, V::SimpleValue(v)) if v == 0.5));
    let V::Histo(h) = &vals[5].2 else { panic!() };
    assert_eq!(h.num, 3.0);
    assert_eq!(h.bucket.iter().sum::<f64>(), 3.0);
    let V::Tensor(t) = &vals[6].2 else { panic!() };
    assert_eq!(t.float_val.len(), 6 * 11);
    // The end status decodes as the hparams plugin's data.
    let Some(What::Summary(s)) = &events.last().unwrap().what else {
        panic!()
    };
    let content = &s.value[0]
        .metadata
        .as_ref()
        .unwrap()
        .plugin_data
        .as_ref()
        .unwrap()
        .content;
    assert!(matches!(
        HParamsPluginData::decode(&content[..])?.data,
        Some(h_params_plugin_data::Data::SessionEndInfo(e)) if e.status == 1
    ));
    Ok(())
}

#[test]
fn buffered_until_the_interval_flush_or_drop() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let slow = WriterOptions {
        flush_interval: Duration::from_secs(3600),
        ..WriterOptions::default()
    };
    let mut logger = TensorBoardLogger::open(dir.path(), slow)?;
    let path = logger.path().to_owned();
    assert_eq!(
        read_event_file(&path)?.len(),
        1,
        "the header is flushed at once"
    );
    logger.scalar("train/loss", 1, 1.0)?;
    assert_eq!(read_event_file(&path)?.len(), 1, "buffered");
    logger.flush()?;
    assert_eq!(read_event_file(&path)?.len(), 2);
    logger.scalar("train/loss", 2, 1.0)?;
    logger.sync()?;
    assert_eq!(read_event_file(&path)?.len(), 3);
    logger.scalar("train/loss", 3, 1.0)?;
    drop(logger);
    assert_eq!(read_event_file(&path)?.len(), 4, "flushed on drop");

    let eager = WriterOptions {
        flush_interval: Duration::ZERO,
        ..WriterOptions::default()
    };
    let mut logger = TensorBoardLogger::open(dir.path(), eager)?;
    logger.scalar("train/loss", 1, 1.0)?;
    assert_eq!(read_event_file(logger.path())?.len(), 2, "interval elapsed");
    assert_eq!(
        event_files(dir.path())?.len(),
        2,
        "each writer has its own file"
    );
    Ok(())
}

#[test]
fn a_corrupted_byte_is_reported_with_the_file_and_offset() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut logger = TensorBoardLogger::open(dir.path(), WriterOptions::default())?;
    logger.scalar("train/loss", 1, 1.0)?;
    let path = logger.path().to_owned();
    drop(logger);
    let mut bytes = std::fs::read(&path)?;
    let last = bytes.len() - 6;
    bytes[last] ^= 0x20;
    std::fs::write(&path, &bytes)?;
    let err = read_event_file(&path).unwrap_err();
    assert!(matches!(err, Error::Record { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));
    assert!(err.to_string().contains("payload CRC mismatch"), "{err}");
    Ok(())
}

#[test]
fn bad_inputs_fail_without_writing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut logger = TensorBoardLogger::open(dir.path(), WriterOptions::default())?;
    let err = logger
        .pr_curve("pr_curve/spam", 3, &[true], &[2.0], 11)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "PR curve 'pr_curve/spam' at step 3: score 0 is 2, not a probability in [0, 1]"
    );
    assert!(logger.histogram("w", 3, &[f32::NAN]).is_err());
    let path = logger.path().to_owned();
    drop(logger);
    assert_eq!(read_event_file(&path)?.len(), 1);
    Ok(())
}
