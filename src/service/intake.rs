//! Intake: a request is checked against its prompt, its callback's form, its Idempotency-Key
//! and the caller's limits, audited, and then answered inline or queued.

use uuid::Uuid;

use super::*;
use crate::facts::TaskFacts;
use crate::limits::{Admission, LimitError, Violation};
use crate::prompts::InputError;
use crate::tasks::NewTask;

impl AiService {
    /// Counts a violation against the user; a failure to record it is logged, not raised (the
    /// request is refused for its own reason anyway).
    pub async fn note_violation(&self, principal: &Principal, violation: Violation) {
        match self.limits.violation(&principal.user_id, violation).await {
            Ok(Some(until)) => {
                tracing::warn!(user_id = %principal.user_id, %until, "user blocked after repeated violations");
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(%err, "could not record a violation"),
        }
    }

    /// The tokens a request reserves until it ends: the prompt as the feature's first provider
    /// counts it (exact for OpenAI models), plus the most the answer may take.
    pub(super) fn token_estimate(
        &self,
        feature: Feature,
        prompt: &crate::prompts::Prompt,
        rendered: &crate::prompts::RenderedPrompt,
    ) -> u64 {
        let primary = self.providers.primary(feature);
        (primary.count_tokens(&rendered.system) + primary.count_tokens(&rendered.user)) as u64
            + u64::from(prompt.parameters.max_tokens)
    }

    /// A callback URL whose form passed the SSRF guard (and the caller has a signing secret
    /// for); its host is resolved only once the request is admitted.
    pub(super) async fn parsed_callback(
        &self,
        principal: &Principal,
        url: Option<&str>,
    ) -> Result<Option<crate::webhooks::guard::Parsed>, ServiceError> {
        match url {
            Some(url) => Ok(Some(
                self.webhooks
                    .check_url(&principal.user_id, url)
                    .await
                    .map_err(ServiceError::CallbackUrl)?,
            )),
            None => Ok(None),
        }
    }

    /// Resolves an admitted request's callback host (bounded, `webhooks::guard`); when it is
    /// refused, the tokens the admission reserved are given back.
    pub(super) async fn resolved_callback(
        &self,
        principal: &Principal,
        feature: Feature,
        admission: &Admission,
        callback: Option<crate::webhooks::guard::Parsed>,
    ) -> Result<Option<reqwest::Url>, String> {
        let Some(parsed) = callback else {
            return Ok(None);
        };
        match crate::webhooks::guard::resolve(parsed).await {
            Ok(checked) => Ok(Some(checked.url)),
            Err(reason) => {
                if let Some(reservation) = &admission.reservation
                    && let Err(err) = self.limits.refund(principal, feature, reservation).await
                {
                    tracing::warn!(%err, "could not refund a refused request's tokens");
                }
                Err(reason)
            }
        }
    }

    /// Checks the input against the feature's prompt, then answers inline or queues it.
    #[tracing::instrument(skip_all, fields(feature = %feature, user_id = %principal.user_id))]
    pub async fn submit(
        &self,
        principal: &Principal,
        feature: Feature,
        mut request: SubmitRequest,
    ) -> Result<(Submitted, Admission), ServiceError> {
        // What is checked, rendered, cached and audited has no invisible characters.
        crate::prompts::clean_input(&mut request.input);
        let prompts = self.prompts.snapshot();
        let prompt = prompts.get(feature, request.prompt_version.as_deref())?;
        let validated = crate::prompts::validate(&prompt, &request.input).and_then(|data| {
            self.check_attempt(principal, feature, &prompt, &data)
                .map(|()| data)
        });
        let data = match validated {
            Ok(data) => data,
            Err(err) => {
                let violation = match err {
                    InputError::ForbiddenTopic { .. } => Violation::ForbiddenTopic,
                    InputError::Invalid(_) => Violation::Invalid,
                };
                self.note_violation(principal, violation).await;
                return Err(err.into());
            }
        };
        let rendered = prompts
            .render(&prompt, &data)
            .map_err(ServiceError::Render)?;
        let estimate = self.token_estimate(feature, &prompt, &rendered);
        let callback = self
            .parsed_callback(principal, request.callback_url.as_deref())
            .await?;
        let task_id = Uuid::now_v7().to_string();
        if let Some(key) = &request.idempotency_key
            && let Some(existing) = self
                .claim_idempotency_key(principal, key, feature, &request, &task_id)
                .await?
        {
            return Ok((Submitted::Accepted(existing), Admission::default()));
        }
        let task = TaskFacts {
            task_id: task_id.clone(),
            request_id: request.request_id.clone(),
            user_id: principal.user_id.clone(),
            role: principal.role,
            feature: Some(feature),
        };
        let facts = crate::audit::RequestFacts {
            task: task.clone(),
            prompt: Some(prompt.reference()),
            client_ip: request.client_ip.clone(),
        };
        self.audit.pre_request(&facts, &request.input);
        self.audit_flags(
            &facts,
            &safety::input_flags(&self.moderation, &prompt, &data),
        );
        let admission = match self
            .limits
            .admit(principal, feature, estimate, &task_id)
            .await
        {
            Ok(admission) => admission,
            Err(err) => {
                if let Some(key) = &request.idempotency_key {
                    self.release_idempotency_key(principal, key, &task_id).await;
                }
                let kind = match &err {
                    LimitError::Refused(refusal) => refusal.limit.name().to_owned(),
                    LimitError::Unavailable(_) => "store_unavailable".to_owned(),
                };
                self.audit.refused(&facts, &kind, &err.to_string());
                return Err(err.into());
            }
        };
        // DNS only for an admitted request: a blocked or over-quota caller cannot make this
        // server resolve names.
        let callback_url = match self
            .resolved_callback(principal, feature, &admission, callback)
            .await
        {
            Ok(url) => url,
            Err(reason) => {
                if let Some(key) = &request.idempotency_key {
                    self.release_idempotency_key(principal, key, &task_id).await;
                }
                self.audit.refused(&facts, "callback_refused", &reason);
                return Err(ServiceError::CallbackUrl(reason));
            }
        };
        let submitted = self
            .run_admitted(
                task,
                feature,
                request,
                &prompt,
                data,
                callback_url,
                &admission,
                principal.tenant.clone(),
            )
            .await?;
        Ok((submitted, admission))
    }

    /// Creates the admitted request's task and runs it inline or queues it.
    #[allow(clippy::too_many_arguments)]
    async fn run_admitted(
        &self,
        facts: TaskFacts,
        feature: Feature,
        request: SubmitRequest,
        prompt: &crate::prompts::Prompt,
        data: serde_json::Map<String, Json>,
        callback_url: Option<reqwest::Url>,
        admission: &Admission,
        tenant: Option<String>,
    ) -> Result<Submitted, ServiceError> {
        let job = job::AiRequestJob {
            tenant,
            ..job::AiRequestJob::new(
                &facts,
                feature,
                prompt.version.clone(),
                data,
                request.stream,
            )
        };
        let task_id = facts.task_id.clone();
        let new_task = NewTask {
            facts,
            kind: job::AI_REQUEST.to_owned(),
            job: serde_json::to_string(&job).expect("a job serializes"),
            callback_url: callback_url.map(|url| url.to_string()),
            quota: admission.reservation.map(|r| r.encode()),
            batch: None,
        };
        let (threshold, seed) = self.settings.intake.for_feature(feature.as_str());
        let inline_within = match request.mode {
            Mode::Async => None,
            Mode::Sync => Some(None),
            Mode::Auto => {
                let estimate = self
                    .engine
                    .latency
                    .estimate(feature.as_str())
                    .await?
                    .unwrap_or(seed);
                (estimate < threshold).then_some(Some(threshold))
            }
        };
        if request.stream && request.mode != Mode::Async {
            return self.stream_inline(new_task, job).await;
        }
        match inline_within {
            None => {
                self.engine.store.enqueue(&new_task).await?;
                let record = self.record_of(&task_id).await?;
                Ok(Submitted::Accepted(record))
            }
            Some(limit) => self.run_inline(new_task, job, limit).await,
        }
    }
}
