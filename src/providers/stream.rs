//! A streamed answer as chunks: the vendor's Server-Sent Events go through its parser, text
//! comes out as it arrives, and the end carries usage and the finish reason. An error ends the
//! stream.

use futures_util::StreamExt as _;

use super::http::{self, SseEvent};
use super::{Chunk, ChunkStream, ProviderError};

/// What one event meant.
pub enum Step {
    Text(String),
    Nothing,
    End,
}

/// A vendor's reading of its stream events.
pub trait Parser: Send + 'static {
    fn on_event(&mut self, event: &SseEvent) -> Result<Step, ProviderError>;
    /// The connection closed: a normal end for some servers, a cut stream for others.
    fn on_close(&self) -> Result<Step, ProviderError>;
    /// The last chunk (usage, finish reason) once the answer is complete.
    fn end(&self) -> Result<Chunk, ProviderError>;
}

pub fn chunks<P: Parser>(response: reqwest::Response, parser: P) -> ChunkStream {
    let events = Box::pin(http::sse_events(response));
    let chunks = futures_util::stream::unfold(
        (events, parser, false),
        |(mut events, mut parser, done)| async move {
            if done {
                return None;
            }
            loop {
                let step = match events.next().await {
                    Some(Ok(event)) => parser.on_event(&event),
                    Some(Err(err)) => Err(err),
                    None => parser.on_close(),
                };
                let item = match step {
                    Ok(Step::Nothing) => continue,
                    Ok(Step::Text(text)) => {
                        return Some((Ok(Chunk { text, done: None }), (events, parser, false)));
                    }
                    Ok(Step::End) => parser.end(),
                    Err(err) => Err(err),
                };
                return Some((item, (events, parser, true)));
            }
        },
    );
    Box::pin(chunks)
}

pub fn cut() -> ProviderError {
    ProviderError::Server("the stream ended before the answer was complete".into())
}
