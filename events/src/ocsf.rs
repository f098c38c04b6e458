//! Checks of the OCSF ids a payload carries. The ids are derived from the
//! typed fields when written, so reading one that disagrees means the
//! sender built the object by hand and got it wrong: say which id and what
//! it should be.

/// OCSF schema version the payloads follow.
pub const OCSF_VERSION: &str = "1.3.0";

pub(crate) fn check_class(
    class_uid: u32,
    category_uid: u32,
    want_class: u32,
    want_category: u32,
    name: &str,
) -> Result<(), String> {
    if class_uid != want_class {
        return Err(format!(
            "class_uid {class_uid} does not match this kind: {name} is class {want_class}"
        ));
    }
    if category_uid != want_category {
        return Err(format!(
            "category_uid {category_uid} does not match class {want_class} (category {want_category})"
        ));
    }
    Ok(())
}

pub(crate) fn check_type_uid(type_uid: u32, class_uid: u32, activity_id: u8) -> Result<(), String> {
    let want = class_uid * 100 + u32::from(activity_id);
    if type_uid != want {
        return Err(format!(
            "type_uid {type_uid} must be class_uid * 100 + activity_id = {want}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_expected_value() {
        assert!(check_class(2004, 2, 2004, 2, "x").is_ok());
        assert!(
            check_class(2005, 2, 2004, 2, "Detection Finding")
                .unwrap_err()
                .contains("class 2004")
        );
        assert!(
            check_class(2004, 7, 2004, 2, "x")
                .unwrap_err()
                .contains("category 2")
        );
        assert!(check_type_uid(700302, 7003, 2).is_ok());
        assert!(
            check_type_uid(700301, 7003, 2)
                .unwrap_err()
                .contains("700302")
        );
    }
}
