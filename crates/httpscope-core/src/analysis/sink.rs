//! [`EndpointSink`]: the pipeline sink that fills a shared [`EndpointTable`].

use std::cell::RefCell;
use std::rc::Rc;

use super::observation::Observation;
use super::table::EndpointTable;
use crate::record::ExchangeRecord;
use crate::sink::{Sink, SinkError};

/// The table shared between the sink (capture side) and a viewer on the same thread.
pub type SharedTable = Rc<RefCell<EndpointTable>>;

/// Feeds every record into a shared endpoint table.
pub struct EndpointSink {
    table: SharedTable,
}

impl EndpointSink {
    pub fn new(table: SharedTable) -> Self {
        Self { table }
    }
}

impl Sink for EndpointSink {
    fn record(&mut self, record: &ExchangeRecord<'_>) -> Result<(), SinkError> {
        // The viewer borrows only while drawing, between polls, on this same thread.
        if let Ok(mut table) = self.table.try_borrow_mut() {
            table.observe(Observation::from_record(record));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
