"""Lesson: a class walked step by step through the other pages, from a lesson file (`lessons/*.toml`)."""

import streamlit as st

from ui.lesson import pick_lesson, pick_step, show_step, show_teacher_notes

st.title("Lesson")
lesson = pick_lesson()
if lesson is not None:
    st.markdown(f"### {lesson.title}\n{lesson.summary}")
    st.caption(f"{lesson.minutes} minutes, {len(lesson.steps)} steps. Each step opens a page of the app: predict first, "
               "then run it and check. The sidebar's Glossary explains every term.")
    show_step(lesson, pick_step(lesson))
    show_teacher_notes(lesson)
