//! The regulatory report a case files (§7): the same core fields for every
//! jurisdiction as JSON, and for `MX` the unusual-operation report (ROI) as
//! one delimited record in the column order documented in `docs/cases.md`.
//! Built once, at submission, and stored; never rebuilt.
use serde_json::{Value, json};

use super::{CaseDetail, CaseSettings, Subject, major};
use crate::{
    domain::rfc3339_ms,
    flows::{CaseFacts, stored_case_facts},
};

/// Version of the report document (and of the ROI column layout).
pub const REPORT_FORMAT: &str = "aduana.report/1";

fn ymd(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y%m%d").to_string())
        .unwrap_or_default()
}

/// The report document of a case being submitted by `actor` at `now`.
pub fn build(detail: &CaseDetail, settings: &CaseSettings, actor: &str, now: i64) -> Value {
    let c = &detail.case;
    // The operation is the first linked assessment's, when there is one.
    let first = detail.assessments.first();
    let facts: CaseFacts = first
        .and_then(|a| stored_case_facts(&a.flow, &a.input))
        .and_then(Result::ok)
        .map(|(_, f)| f)
        .unwrap_or_default();
    let (amount_minor, currency) = match (c.amount_minor, &c.currency) {
        (Some(m), Some(cur)) => (Some(m), Some(cur.clone())),
        _ => first
            .and_then(|a| serde_json::from_str::<Value>(&a.response).ok())
            .map(|r| {
                (
                    r["amount"]["minor"].as_i64(),
                    r["amount"]["currency"].as_str().map(str::to_owned),
                )
            })
            .unwrap_or((None, None)),
    };
    let amount = match (amount_minor, &currency) {
        (Some(m), Some(cur)) => json!({"minor": m, "major": major(m, cur), "currency": cur}),
        _ => Value::Null,
    };
    let subject: Subject = c
        .subject
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let operation_at = first.map(|a| a.created_at).or(c.incident_date);
    json!({
        "format": REPORT_FORMAT,
        "report_type": "operacion_inusual",
        "case_id": c.id,
        "reference_number": c.reference_number,
        "jurisdiction": c.jurisdiction,
        "reporting_entity": settings.reporting_entity,
        "operation": {
            "flow": first.map(|a| a.flow.clone()),
            "channel": facts.channel,
            "incident_type": c.incident_type,
            "account": subject.account.clone().or(facts.account.clone()),
            "amount": amount,
            "date": operation_at.map(rfc3339_ms),
            "detection_date": rfc3339_ms(c.detected_at),
            "session_ids": detail.assessments.iter().map(|a| a.session_id.clone()).collect::<Vec<_>>(),
        },
        "subject": subject,
        "parties": {
            "victim": {"name": c.victim_name, "email": c.victim_email},
            "counterparty": {"name": facts.counterparty_name, "account": facts.account, "email": facts.email, "customer_id": facts.customer_id},
        },
        "description": c.description,
        "unusual_reasons": c.unusual_reasons,
        "due_at": rfc3339_ms(c.due_at),
        "submitted_at": rfc3339_ms(now),
        "submitted_by": actor,
    })
}

/// One field of a delimited record: uppercase, without accents, and
/// without the delimiter or line breaks (which would shift every later
/// column).
fn field(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    s.chars()
        .map(|c| match c {
            'á' | 'Á' => 'A',
            'é' | 'É' => 'E',
            'í' | 'Í' => 'I',
            'ó' | 'Ó' => 'O',
            'ú' | 'Ú' | 'ü' | 'Ü' => 'U',
            'ñ' | 'Ñ' => 'N',
            ';' | '\r' | '\n' | '\t' | '|' => ' ',
            c => c,
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

fn day_field(v: &Value) -> String {
    v.as_str()
        .and_then(crate::domain::parse_rfc3339_ms)
        .map(ymd)
        .unwrap_or_default()
}

/// The ROI columns, in order (`docs/cases.md` documents each).
pub const ROI_COLUMNS: &[&str] = &[
    "tipo_reporte",
    "periodo",
    "folio",
    "organo_supervisor",
    "clave_sujeto_obligado",
    "localidad",
    "codigo_postal",
    "tipo_operacion",
    "instrumento_monetario",
    "numero_cuenta",
    "monto",
    "moneda",
    "fecha_operacion",
    "fecha_deteccion",
    "nacionalidad",
    "tipo_persona",
    "razon_social",
    "nombre",
    "apellido_paterno",
    "apellido_materno",
    "rfc",
    "curp",
    "fecha_nacimiento_constitucion",
    "domicilio",
    "telefono",
    "descripcion_operacion",
    "razones_inusualidad",
];

/// The MX unusual-operation report as one `;`-delimited record (each
/// field followed by `;`, CRLF-terminated); `None` for other
/// jurisdictions.
pub fn mx_roi_txt(doc: &Value) -> Option<String> {
    if doc["jurisdiction"] != "MX" {
        return None;
    }
    let entity = &doc["reporting_entity"];
    let op = &doc["operation"];
    let subject = &doc["subject"];
    // Outgoing transfers and incoming payments; the codes are the
    // authority's catalogue keys as documented in docs/cases.md.
    let operation_type = match op["flow"].as_str() {
        Some("payin") => "01",
        _ => "02",
    };
    let instrument = match op["channel"].as_str() {
        Some("card") => "04",
        _ => "03",
    };
    let nationality = match subject["nationality"].as_str() {
        Some("MX") => "1",
        Some(_) => "2",
        None => "",
    };
    let person = match subject["person_type"].as_str() {
        Some("fisica") => "1",
        Some("moral") => "2",
        _ => "",
    };
    let reference = doc["reference_number"].as_str().unwrap_or_default();
    let columns: Vec<String> = vec![
        "2".into(), // unusual
        day_field(&doc["submitted_at"]),
        field(&Value::from(reference.trim_start_matches("CLM-"))),
        field(&entity["supervisor_code"]),
        field(&entity["entity_code"]),
        field(&entity["locality"]),
        field(&entity["postal_code"]),
        operation_type.into(),
        instrument.into(),
        field(&op["account"]),
        field(&op["amount"]["major"]),
        field(&op["amount"]["currency"]),
        day_field(&op["date"]),
        day_field(&op["detection_date"]),
        nationality.into(),
        person.into(),
        field(&subject["legal_name"]),
        field(&subject["first_name"]),
        field(&subject["paternal_surname"]),
        field(&subject["maternal_surname"]),
        field(&subject["rfc"]),
        field(&subject["curp"]),
        subject["birth_date"]
            .as_str()
            .map(|d| d.replace('-', ""))
            .unwrap_or_default(),
        field(&subject["address"]),
        field(&subject["phone"]),
        field(&doc["description"]),
        field(&doc["unusual_reasons"]),
    ];
    debug_assert_eq!(columns.len(), ROI_COLUMNS.len());
    let mut line = String::new();
    for c in columns {
        line.push_str(&c);
        line.push(';');
    }
    line.push_str("\r\n");
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cannot_shift_columns() {
        assert_eq!(field(&json!("Pérez; García\nñandú")), "PEREZ GARCIA NANDU");
        assert_eq!(field(&Value::Null), "");
    }

    #[test]
    fn the_record_has_one_field_per_documented_column() {
        let doc = json!({
            "jurisdiction": "MX", "reference_number": "CLM-AB12CD",
            "submitted_at": "2026-12-07T10:00:00.000Z",
            "reporting_entity": {"supervisor_code": "001", "entity_code": "040012"},
            "operation": {"flow": "payout", "channel": "spei", "account": "032180000118359719",
                          "amount": {"major": "25000.00", "currency": "MXN"},
                          "date": "2026-12-01T08:00:00.000Z", "detection_date": "2026-12-02T09:00:00.000Z"},
            "subject": {"person_type": "fisica", "nationality": "MX", "first_name": "Ana"},
            "description": "Transferencia; con punto y coma", "unusual_reasons": "- a\n- b",
        });
        let line = mx_roi_txt(&doc).unwrap_or_default();
        assert!(line.ends_with(";\r\n"));
        let fields: Vec<&str> = line.trim_end_matches("\r\n").split(';').collect();
        // Every field is followed by `;`, so the split ends with "".
        assert_eq!(fields.len(), ROI_COLUMNS.len() + 1);
        assert_eq!(fields[0], "2");
        assert_eq!(fields[1], "20261207");
        assert_eq!(fields[2], "AB12CD");
        assert_eq!(fields[10], "25000.00");
        assert_eq!(fields[12], "20261201");
        assert_eq!(fields[13], "20261202");
        assert_eq!(fields[25], "TRANSFERENCIA CON PUNTO Y COMA");
        assert_eq!(mx_roi_txt(&json!({"jurisdiction": "CL"})), None);
    }
}
