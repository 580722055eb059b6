//! Renders prompts with Handlebars in strict mode and without HTML escaping.
//!
//! Input values are substituted as data: a student's `{{...}}` is printed as typed, never parsed.

use std::collections::BTreeSet;

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{Handlebars, Path, PathSeg};
use serde_json::Value as Json;

/// Block helpers whose body is rendered in the block parameter's context, so the names used
/// inside refer to the item, not to the prompt's inputs.
const CONTEXT_CHANGING_HELPERS: &[&str] = &["each", "with"];
/// Helpers a prompt template may call.
const ALLOWED_HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "eq", "ne", "gt", "lt", "and", "or", "not",
];

pub fn new_engine() -> Handlebars<'static> {
    let mut engine = Handlebars::new();
    engine.set_strict_mode(true);
    engine.register_escape_fn(handlebars::no_escape);
    engine
}

/// Why a template does not compile, with the line inside the template when known.
#[derive(Debug)]
pub struct CompileError {
    pub message: String,
    pub template_line: Option<usize>,
}

/// Compiles `source` and returns it with every top-level variable it reads.
pub fn compile(source: &str) -> Result<(Template, BTreeSet<String>), CompileError> {
    let template = Template::compile(source).map_err(|err| {
        let reason = err.reason().to_string();
        // Handlebars lists every token it expected; the position says more.
        let message = reason
            .split_once(": expected ")
            .map_or(reason.as_str(), |(head, _)| head);
        CompileError {
            message: message.to_owned(),
            template_line: err.pos().map(|(line, _)| line),
        }
    })?;
    let mut names = BTreeSet::new();
    collect(&template, &mut names).map_err(|message| CompileError {
        message,
        template_line: None,
    })?;
    Ok((template, names))
}

fn collect(template: &Template, names: &mut BTreeSet<String>) -> Result<(), String> {
    for element in &template.elements {
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(helper) | TemplateElement::HtmlExpression(helper) => {
                match &helper.name {
                    Parameter::Name(name) if helper.params.is_empty() => {
                        if !ALLOWED_HELPERS.contains(&name.as_str()) {
                            names.insert(name.clone());
                        }
                    }
                    Parameter::Name(name) => {
                        check_helper(name)?;
                        helper.params.iter().try_for_each(|p| param(p, names))?;
                    }
                    other => param(other, names)?,
                }
            }
            TemplateElement::HelperBlock(helper) => {
                let name = match &helper.name {
                    Parameter::Name(name) => name.as_str(),
                    _ => return Err("a block must start with a helper name".into()),
                };
                check_helper(name)?;
                helper.params.iter().try_for_each(|p| param(p, names))?;
                if !CONTEXT_CHANGING_HELPERS.contains(&name)
                    && let Some(body) = &helper.template
                {
                    collect(body, names)?;
                }
                if let Some(inverse) = &helper.inverse {
                    collect(inverse, names)?;
                }
            }
            TemplateElement::DecoratorExpression(_)
            | TemplateElement::DecoratorBlock(_)
            | TemplateElement::PartialExpression(_)
            | TemplateElement::PartialBlock(_) => {
                return Err("partials and decorators are not allowed in prompt templates".into());
            }
            _ => return Err("unsupported template element".into()),
        }
    }
    Ok(())
}

fn check_helper(name: &str) -> Result<(), String> {
    if ALLOWED_HELPERS.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "unknown helper `{name}` (allowed: {})",
            ALLOWED_HELPERS.join(", ")
        ))
    }
}

fn param(parameter: &Parameter, names: &mut BTreeSet<String>) -> Result<(), String> {
    match parameter {
        Parameter::Name(name) => {
            names.insert(name.clone());
        }
        Parameter::Path(Path::Relative((segments, _))) => {
            if let Some(PathSeg::Named(first)) = segments.first() {
                names.insert(first.clone());
            }
        }
        Parameter::Path(Path::Local(_)) | Parameter::Literal(_) => {}
        Parameter::Subexpression(_) => {
            return Err("subexpressions are not allowed in prompt templates".into());
        }
        _ => return Err("unsupported template parameter".into()),
    }
    Ok(())
}

/// Renders a registered template; `data` must hold every declared input (absent optional ones
/// as `null`), so strict mode only fails for a genuinely missing variable.
pub fn render(engine: &Handlebars<'static>, name: &str, data: &Json) -> Result<String, String> {
    engine.render(name, data).map_err(|err| match err.reason() {
        handlebars::RenderErrorReason::MissingVariable(Some(var)) => {
            format!("variable `{var}` has no value")
        }
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(source: &str) -> Vec<String> {
        compile(source).unwrap().1.into_iter().collect()
    }

    #[test]
    fn finds_variables_outside_item_contexts() {
        assert_eq!(
            names("Soru: {{question}} ({{hint_level}}/3)"),
            ["hint_level", "question"]
        );
        assert_eq!(
            names("{{#if attempt}}Deneme: {{attempt}}{{else}}yok {{other}}{{/if}}"),
            ["attempt", "other"]
        );
        assert_eq!(
            names("{{#each topics}}- {{this}} {{name}}\n{{/each}}"),
            ["topics"]
        );
    }

    #[test]
    fn refuses_partials_unknown_helpers_and_bad_syntax() {
        assert!(
            compile("{{> header}}")
                .unwrap_err()
                .message
                .contains("partials")
        );
        assert!(
            compile("{{#loop x}}{{/loop}}")
                .unwrap_err()
                .message
                .contains("unknown helper")
        );
        assert!(compile("{{#if x}}").is_err());
    }

    #[test]
    fn input_is_data_not_template() {
        let mut engine = new_engine();
        let (template, _) = compile("Soru: {{question}}").unwrap();
        engine.register_template("t", template);
        let data = serde_json::json!({"question": "{{secret}} & <b>Öğrenci</b> 'ş'"});
        let out = render(&engine, "t", &data).unwrap();
        assert_eq!(out, "Soru: {{secret}} & <b>Öğrenci</b> 'ş'");
    }

    #[test]
    fn strict_mode_reports_missing_variables() {
        let mut engine = new_engine();
        let (template, _) = compile("Soru: {{question}}").unwrap();
        engine.register_template("t", template);
        let err = render(&engine, "t", &serde_json::json!({})).unwrap_err();
        assert!(err.contains("question"), "{err}");
    }
}
