//! [`EndpointSink`]: the pipeline sink that fills a shared [`EndpointTable`] (or any
//! other [`Observer`] of messages).

use std::cell::RefCell;
use std::rc::Rc;

use super::observation::Observation;
use super::table::EndpointTable;
use crate::record::ExchangeRecord;
use crate::sink::{Sink, SinkError};

/// What takes in messages one at a time: the endpoint table, the report's data.
pub trait Observer {
    fn observe(&mut self, obs: Observation);
}

impl Observer for EndpointTable {
    fn observe(&mut self, obs: Observation) {
        EndpointTable::observe(self, obs);
    }
}

/// The table shared between the sink (capture side) and a viewer on the same thread.
pub type SharedTable = Rc<RefCell<EndpointTable>>;

/// Feeds every record into a shared observer.
pub struct EndpointSink<T = EndpointTable> {
    table: Rc<RefCell<T>>,
}

impl<T> EndpointSink<T> {
    pub fn new(table: Rc<RefCell<T>>) -> Self {
        Self { table }
    }
}

impl<T: Observer> Sink for EndpointSink<T> {
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
