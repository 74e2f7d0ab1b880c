//! The table reader on arbitrary bytes, both roles, strict and lenient, with
//! and without a group column: `Ok` rows of consistent shape or an error
//! that names the file; never a panic.
#![no_main]

use std::io::Read;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nof1::table::{TableOptions, TableReader};
use nof1::{ErrorKind, Role};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let role = if flags & 1 == 0 {
        Role::Reference
    } else {
        Role::Patients
    };
    let options = TableOptions {
        strict: flags & 2 != 0,
        delimiter: match (flags >> 2) & 3 {
            0 => None,
            1 => Some(b'\t'),
            2 => Some(b';'),
            _ => Some(b','),
        },
        group_col: (flags & 16 != 0).then(|| "g".to_string()),
        ..TableOptions::default()
    };
    let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(bytes.to_vec()));
    let check = |e: nof1::Error| {
        assert!(e.to_string().starts_with("fuzz.csv"), "{e}");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Parse { .. } | ErrorKind::Schema { .. } | ErrorKind::Io { .. }
            ),
            "{e:?}"
        );
    };
    match TableReader::from_reader(input, Path::new("fuzz.csv"), &options, role) {
        Err(e) => check(e),
        Ok(mut reader) => loop {
            match reader.next_chunk(5) {
                Ok(Some(chunk)) => {
                    assert_eq!(chunk.values().len(), chunk.n_rows() * chunk.n_features());
                    assert_eq!(chunk.notes().len(), chunk.n_rows());
                }
                Ok(None) => break,
                Err(e) => {
                    check(e);
                    break;
                }
            }
        },
    }
});
