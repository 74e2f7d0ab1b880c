//! Streaming patients: a patient file is read in batches on its own thread
//! while the previous batch is assessed, so memory stays bounded by the
//! batch size and reading overlaps assessment.

use std::path::Path;

use super::{Model, Progress};
use crate::error::{Error, Position, Result};
use crate::table::{FeatureMap, TableReader, preview_names};
use crate::verdict::{Assessment, VerdictCounts};

/// Rows read and assessed per batch by [`Model::assess_stream`].
pub const CHUNK_ROWS: usize = 2_048;

/// A patient file opened for [`Model::assess_stream`], its columns matched to
/// the model's features by name. Build with [`Model::patient_stream`].
#[derive(Debug)]
pub struct PatientStream {
    reader: TableReader,
    map: FeatureMap,
    unknown: Vec<String>,
}

impl PatientStream {
    /// The patient file.
    pub fn source(&self) -> &Path {
        self.reader.source()
    }

    /// The file's feature columns the model does not know, in file order:
    /// they are neither parsed nor checked.
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }

    /// The model's features the file lacks, in model order: they count as
    /// missing for every patient.
    pub fn absent(&self) -> &[String] {
        self.map.absent()
    }
}

/// What [`Model::assess_stream`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// How many patients got each verdict.
    pub verdicts: VerdictCounts,
    /// Rows with a recovered defect (a non-empty `note`).
    pub n_noted: usize,
}

/// Why [`Model::assess_stream`] stopped.
#[derive(Debug)]
pub enum StreamError<E> {
    /// Reading the patient file failed (see [`TableReader::next_chunk`]).
    Input(Error),
    /// The sink returned an error.
    Sink(E),
}

impl<E: std::fmt::Display> std::fmt::Display for StreamError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Input(e) => e.fmt(f),
            StreamError::Sink(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for StreamError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Input(e) => e.source(),
            StreamError::Sink(e) => e.source(),
        }
    }
}

impl Model {
    /// Matches the columns of an opened patient file to the model. Columns
    /// the model does not know are dropped from the reader (reported by
    /// [`PatientStream::unknown`]), so text in an unused column is not a
    /// defect of the patient.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Schema`] at line 1 when none of the model's
    /// features is a column of the file (a wrong file or delimiter).
    pub fn patient_stream(&self, mut reader: TableReader) -> Result<PatientStream> {
        let all_columns = reader.feature_names();
        let map = self.feature_map(&all_columns);
        if map.n_matched() == 0 {
            return Err(Error::schema(
                Position::line(reader.source(), 1),
                format!(
                    "none of the model's {} features ({}) is a column of the patients file; is it the right file and delimiter?",
                    self.features().len(),
                    preview_names(self.features())
                ),
            ));
        }
        let unknown = map.unknown().to_vec();
        reader.retain_features(self.features());
        let map = self.feature_map(&reader.feature_names());
        Ok(PatientStream {
            reader,
            map,
            unknown,
        })
    }

    /// Assesses every patient of `patients`, batch by batch in file order:
    /// the next [`CHUNK_ROWS`] rows are read and parsed on a reader thread
    /// while the current batch is assessed and handed to `sink` (one
    /// assessment per row, in row order). `progress` advances by the rows
    /// of each batch.
    ///
    /// # Errors
    /// [`StreamError::Input`] when the file cannot be read or a row is
    /// malformed (the rows before it have reached `sink`);
    /// [`StreamError::Sink`] with the first error `sink` returns (reading
    /// stops).
    pub fn assess_stream<E>(
        &self,
        patients: PatientStream,
        progress: &dyn Progress,
        mut sink: impl FnMut(&[Assessment]) -> std::result::Result<(), E>,
    ) -> std::result::Result<StreamSummary, StreamError<E>> {
        let PatientStream {
            mut reader, map, ..
        } = patients;
        progress.start("assessing", 0);
        let mut summary = StreamSummary::default();
        // Batches arrive in file order; a channel of one batch lets the
        // reader run one batch ahead.
        std::thread::scope(|scope| -> std::result::Result<(), StreamError<E>> {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            scope.spawn(move || {
                loop {
                    let next = reader.next_chunk(CHUNK_ROWS);
                    let done = !matches!(next, Ok(Some(_)));
                    // A closed channel means the consumer stopped on an error.
                    if tx.send(next).is_err() || done {
                        break;
                    }
                }
            });
            for next in rx {
                let Some(chunk) = next.map_err(StreamError::Input)? else {
                    break;
                };
                summary.n_noted += chunk.notes().iter().filter(|n| !n.is_empty()).count();
                let rows = self
                    .assess_mapped(&chunk, &map)
                    .map_err(StreamError::Input)?;
                summary.verdicts.add(&rows);
                sink(&rows).map_err(StreamError::Sink)?;
                progress.advance(rows.len() as u64);
            }
            Ok(())
        })?;
        progress.finish();
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NoProgress;
    use crate::table::{Role, TableOptions};
    use crate::{ErrorKind, Params, Table};

    fn reference() -> Table {
        let mut values = Vec::new();
        for i in 0..150 {
            let t = i as f64 / 9.0;
            values.extend_from_slice(&[t.sin(), t.cos(), 0.5 * t.sin() + 0.1 * (3.0 * t).cos()]);
        }
        let ids = (0..150).map(|i| format!("r{i}")).collect();
        let names = ["a", "b", "c"].map(String::from).to_vec();
        Table::from_rows(ids, names, values).unwrap()
    }

    fn reader(text: &str) -> TableReader {
        reader_with(text, false)
    }

    fn reader_with(text: &str, strict: bool) -> TableReader {
        let input: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(text.to_owned()));
        TableReader::from_reader(
            input,
            Path::new("p.csv"),
            &TableOptions {
                strict,
                ..TableOptions::default()
            },
            Role::Patients,
        )
        .unwrap()
    }

    #[test]
    fn stream_matches_assess_and_reports_columns() {
        let model = Params::default().k(5).fit(&reference()).unwrap();
        // Column `x` is unknown (and not even numeric), `b` is absent.
        let mut text = String::from("id,c,x,a\n");
        for i in 0..(2 * CHUNK_ROWS + 7) {
            let t = i as f64 / 13.0;
            text.push_str(&format!("p{i},{},text,{}\n", t.cos(), t.sin() * 3.0));
        }
        let stream = model.patient_stream(reader(&text)).unwrap();
        assert_eq!(stream.unknown(), ["x".to_string()]);
        assert_eq!(stream.absent(), ["b".to_string()]);
        let mut streamed = Vec::new();
        let summary = model
            .assess_stream(stream, &NoProgress, |rows| {
                streamed.extend_from_slice(rows);
                Ok::<(), Error>(())
            })
            .unwrap();
        let table = crate::table::read_table_str(
            &text,
            Path::new("p.csv"),
            &TableOptions::default(),
            Role::Patients,
        )
        .unwrap();
        let direct = model.assess(&table).unwrap();
        assert_eq!(streamed.len(), direct.len());
        for (s, d) in streamed.iter().zip(&direct) {
            assert_eq!(s.id, d.id);
            assert_eq!(s.verdict, d.verdict);
            assert_eq!(s.p_value.to_bits(), d.p_value.to_bits());
        }
        assert_eq!(summary.verdicts, VerdictCounts::of(&direct));
        assert_eq!(summary.verdicts.total(), 2 * CHUNK_ROWS + 7);
    }

    #[test]
    fn stream_errors_are_typed() {
        let model = Params::default().k(5).fit(&reference()).unwrap();
        let e = model.patient_stream(reader("id,u,v\np,1,2\n")).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Schema { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("p.csv:1: none of the model's 3 features"),
            "{e}"
        );
        let stream = model.patient_stream(reader("id,a,b,c\np,1,2,3\n")).unwrap();
        let e = model
            .assess_stream(stream, &NoProgress, |_| Err("sink full"))
            .unwrap_err();
        assert!(matches!(e, StreamError::Sink("sink full")));
        // A cell that is not a number is an error of a strict reader.
        let stream = model
            .patient_stream(reader_with("id,a,b,c\np,1,2,zz\n", true))
            .unwrap();
        let e = model
            .assess_stream(stream, &NoProgress, |_| Ok::<(), Error>(()))
            .unwrap_err();
        assert!(matches!(e, StreamError::Input(_)), "{e}");
    }

    #[test]
    fn a_feature_map_of_other_columns_is_an_error() {
        let model = Params::default().k(5).fit(&reference()).unwrap();
        let names = ["a", "b", "c"].map(String::from).to_vec();
        let patients =
            Table::from_rows(vec!["p".into()], names.clone(), vec![0.1, 0.2, 0.3]).unwrap();
        let wide = model.feature_map(&["a", "b", "c", "d"].map(String::from));
        let e = model.assess_mapped(&patients, &wide).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::DimensionMismatch { .. }),
            "{e}"
        );
        let e = model
            .assess_one("p", None, &[0.1, 0.2], String::new())
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::DimensionMismatch { .. }),
            "{e}"
        );
        assert!(
            model
                .assess_one("p", None, &[0.1, 0.2, 0.3], String::new())
                .is_ok()
        );
    }
}
